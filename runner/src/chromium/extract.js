// The page's main content as HTML, for conversion to Markdown: `<main>` (or the one `<article>`)
// when the page has one, else the body without its navigation, header, footer and asides;
// hidden elements, form controls, scripts and embedded objects removed; links and images made absolute.
//
// Runs in an isolated world on a copy: the page itself is not changed. Nesting past MAX_DEPTH is
// flattened to its text (the HTML parser that follows walks the tree recursively).
(() => {
  const MAX_DEPTH = 100;
  const MAX_HTML = 4 << 20;
  const articles = document.querySelectorAll('article');
  const root = document.querySelector('main, [role=main]') ||
    (articles.length === 1 ? articles[0] : null) || document.body;
  if (!root) return '';
  const clone = root.cloneNode(true);
  const originals = root.querySelectorAll('*');
  const copies = clone.querySelectorAll('*');
  // Cloning runs the page's custom-element constructors, which can change the copy: then the
  // copy cannot be matched with the original, and the page's visible text is used instead.
  if (originals.length !== copies.length) {
    const p = document.createElement('pre');
    p.textContent = root.innerText || '';
    return p.outerHTML;
  }
  const hidden = [];
  for (let i = 0; i < originals.length && i < copies.length; i++) {
    const el = originals[i];
    if (el.hidden || el.getAttribute('aria-hidden') === 'true') { hidden.push(copies[i]); continue; }
    const st = getComputedStyle(el);
    if (st.display === 'none' || st.visibility === 'hidden') { hidden.push(copies[i]); continue; }
    if (el.tagName === 'A' && el.hasAttribute('href') && !/^javascript:/i.test(el.getAttribute('href'))) {
      copies[i].setAttribute('href', el.href);
    }
    if (el.tagName === 'IMG' && el.hasAttribute('src')) copies[i].setAttribute('src', el.src);
  }
  for (const el of hidden) el.remove();
  const chrome = root === document.body
    ? ', nav, header, footer, aside, [role=navigation], [role=banner], [role=contentinfo], [role=complementary]'
    : '';
  // Form controls are for acting on (the snapshot shows them), not content to read.
  const controls = ', select, textarea, input, button, [role=button]';
  for (const el of clone.querySelectorAll('script, style, noscript, template, svg, canvas, iframe, object, embed' + controls + chrome)) {
    el.remove();
  }
  const flatten = (el, depth) => {
    for (const child of [...el.children]) {
      if (depth >= MAX_DEPTH) child.replaceWith(document.createTextNode(child.textContent));
      else flatten(child, depth + 1);
    }
  };
  // Iterative for the top levels would be tidier; recursion to MAX_DEPTH is well within JS's stack.
  flatten(clone, 0);
  const html = clone.outerHTML;
  return html.length > MAX_HTML ? html.slice(0, MAX_HTML) : html;
})()
