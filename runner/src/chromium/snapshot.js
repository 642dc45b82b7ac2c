// The page as a compact outline for an agent: one line per element that matters (landmarks,
// headings, text, and everything one can act on), indented by nesting. Each element one can act
// on carries a ref (`[e12] button "Sign in"`) written to its `data-ds-ref` attribute, so an action
// can find it again with the selector `[data-ds-ref="e12"]`. An element keeps its ref across
// snapshots while it stays in the document; new ones continue the numbering.
//
// Runs in an isolated world: the page's scripts cannot replace the functions used here.
(() => {
  const ATTR = 'data-ds-ref';
  const MAX_LINES = 2000;
  const MAX_CHARS = 60000;
  const NAME_CHARS = 100;
  const TEXT_CHARS = 300;

  // Refs stay at most 7 digits (what an action accepts): a page that plants a huge one only
  // restarts the numbering.
  const MAX_REF = 9999999;
  const MAX_DEPTH = 200;
  let next = 1;
  const planted = [...document.querySelectorAll('[' + ATTR + ']')];
  for (const el of planted) {
    const m = /^e(\d{1,7})$/.exec(el.getAttribute(ATTR) || '');
    if (m) next = Math.max(next, Number(m[1]) + 1);
    else el.removeAttribute(ATTR);
  }
  if (next + 10000 > MAX_REF) {
    for (const el of planted) el.removeAttribute(ATTR);
    next = 1;
  }
  const seen = new Set();

  const squeeze = (s, max) => {
    const t = (s || '').replace(/\s+/g, ' ').trim();
    return t.length > max ? t.slice(0, max - 1) + '…' : t;
  };
  const quote = (s) => JSON.stringify(s);

  const INPUT_ROLES = {
    button: 'button', submit: 'button', reset: 'button', image: 'button',
    checkbox: 'checkbox', radio: 'radio', range: 'slider', number: 'spinbutton',
    search: 'searchbox', file: 'button', color: 'button',
  };
  const ACTIONABLE = new Set([
    'button', 'link', 'textbox', 'searchbox', 'checkbox', 'radio', 'combobox', 'listbox',
    'slider', 'spinbutton', 'switch', 'tab', 'menuitem', 'menuitemcheckbox', 'menuitemradio',
    'option', 'treeitem',
  ]);
  const LANDMARKS = {
    nav: 'navigation', main: 'main', header: 'banner', footer: 'contentinfo', aside: 'complementary',
    form: 'form', dialog: 'dialog', table: 'table', ul: 'list', ol: 'list', li: 'listitem',
  };
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'META', 'LINK']);

  // Only roles this outline knows are printed: an attribute is the page's text, and printing it
  // raw would let a page write lines of its own into the snapshot.
  const KNOWN = new Set([...ACTIONABLE, 'heading', 'img', 'iframe', 'region', 'navigation', 'main',
    'banner', 'contentinfo', 'complementary', 'form', 'dialog', 'alertdialog', 'alert', 'table',
    'list', 'listitem', 'search', 'tablist', 'tabpanel', 'menu', 'menubar', 'toolbar', 'grid',
    'row', 'cell', 'gridcell', 'columnheader', 'rowheader', 'article', 'status', 'tree']);
  const INPUT_TYPES = new Set(['text', 'email', 'password', 'search', 'tel', 'url', 'number',
    'date', 'time', 'datetime-local', 'month', 'week', 'range', 'color', 'file', 'checkbox', 'radio',
    'button', 'submit', 'reset', 'image']);
  const roleOf = (el) => {
    const explicit = (el.getAttribute('role') || '').trim().toLowerCase().split(/\s+/)[0];
    if (KNOWN.has(explicit)) return explicit;
    const tag = el.tagName;
    if (tag === 'A' && el.hasAttribute('href')) return 'link';
    if (tag === 'BUTTON' || tag === 'SUMMARY') return 'button';
    if (tag === 'SELECT') return el.multiple ? 'listbox' : 'combobox';
    if (tag === 'TEXTAREA') return 'textbox';
    if (tag === 'INPUT') {
      const type = (el.getAttribute('type') || 'text').toLowerCase();
      if (type === 'hidden') return null;
      return INPUT_ROLES[type] || 'textbox';
    }
    if (/^H[1-6]$/.test(tag)) return 'heading';
    if (tag === 'IMG') return el.getAttribute('alt') ? 'img' : null;
    if (tag === 'IFRAME') return 'iframe';
    if (el.isContentEditable && el.parentElement && !el.parentElement.isContentEditable) {
      return 'textbox';
    }
    if (tag === 'SECTION' && (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby'))) {
      return 'region';
    }
    return LANDMARKS[tag.toLowerCase()] || null;
  };

  const shown = (el) => {
    if (el.getAttribute('aria-hidden') === 'true' || el.hidden) return false;
    const st = getComputedStyle(el);
    if (st.display === 'none' || st.visibility === 'hidden' || st.visibility === 'collapse') {
      return false;
    }
    if (st.display === 'contents') return true;
    const r = el.getBoundingClientRect();
    return r.width > 0 || r.height > 0 || el.children.length > 0;
  };

  const textOf = (el) => squeeze(el.innerText || el.textContent || '', NAME_CHARS);

  const nameOf = (el, role) => {
    const by = el.getAttribute('aria-labelledby');
    if (by) {
      const parts = by.split(/\s+/).map((id) => document.getElementById(id)).filter(Boolean);
      const t = squeeze(parts.map((p) => p.innerText || p.textContent).join(' '), NAME_CHARS);
      if (t) return t;
    }
    const aria = squeeze(el.getAttribute('aria-label'), NAME_CHARS);
    if (aria) return aria;
    const tag = el.tagName;
    if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') {
      const labels = el.labels ? [...el.labels].map((l) => l.innerText).join(' ') : '';
      const t = squeeze(labels, NAME_CHARS);
      if (t) return t;
      const type = (el.getAttribute('type') || '').toLowerCase();
      if (['button', 'submit', 'reset'].includes(type)) {
        return squeeze(el.value || (type === 'submit' ? 'Submit' : ''), NAME_CHARS);
      }
      if (type === 'image') return squeeze(el.getAttribute('alt'), NAME_CHARS);
      return squeeze(el.getAttribute('placeholder') || el.getAttribute('title') ||
        el.getAttribute('name'), NAME_CHARS);
    }
    if (tag === 'IMG') return squeeze(el.getAttribute('alt'), NAME_CHARS);
    if (tag === 'IFRAME') return squeeze(el.getAttribute('title') || el.getAttribute('name'), NAME_CHARS);
    if (['list', 'listitem', 'table', 'navigation', 'main', 'banner', 'contentinfo',
      'complementary', 'form', 'dialog', 'region'].includes(role)) {
      return squeeze(el.getAttribute('title'), NAME_CHARS);
    }
    return textOf(el) || squeeze(el.getAttribute('title'), NAME_CHARS);
  };

  const details = (el, role) => {
    const out = [];
    if (role === 'heading') {
      const level = Number(el.tagName[1]) || parseInt(el.getAttribute('aria-level'), 10);
      out.push('level=' + (level >= 1 && level <= 9 ? level : 2));
    }
    if (role === 'link') {
      const href = el.getAttribute('href') || '';
      if (href && !href.startsWith('javascript:')) out.push('href=' + quote(squeeze(href, NAME_CHARS)));
    }
    const raw = (el.getAttribute('type') || '').toLowerCase();
    const type = INPUT_TYPES.has(raw) ? raw : '';
    if (role === 'textbox' || role === 'searchbox' || role === 'spinbutton' || role === 'slider') {
      if (type === 'password') {
        if (el.value) out.push('value=(hidden)');
      } else if (el.isContentEditable && el.tagName !== 'INPUT' && el.tagName !== 'TEXTAREA') {
        const v = squeeze(el.innerText, NAME_CHARS);
        if (v) out.push('value=' + quote(v));
      } else if (typeof el.value === 'string' && el.value) {
        out.push('value=' + quote(squeeze(el.value, NAME_CHARS)));
      }
      if (type && type !== 'text') out.push('type=' + type);
    }
    if (role === 'combobox' || role === 'listbox') {
      if (el.tagName === 'SELECT') {
        const chosen = [...el.selectedOptions].map((o) => squeeze(o.label || o.text, NAME_CHARS));
        if (chosen.length) out.push('value=' + quote(chosen.join(', ')));
        const options = [...el.options].slice(0, 30).map((o) => quote(squeeze(o.value, 60)));
        out.push('options=[' + options.join(', ') + (el.options.length > 30 ? ', …' : '') + ']');
      }
    }
    if (role === 'checkbox' || role === 'radio' || role === 'switch') {
      const checked = el.tagName === 'INPUT' ? el.checked : el.getAttribute('aria-checked') === 'true';
      if (checked) out.push('checked');
    }
    if (el.disabled || el.getAttribute('aria-disabled') === 'true') out.push('disabled');
    if (el.required) out.push('required');
    const expanded = el.getAttribute('aria-expanded');
    if (expanded === 'true' || expanded === 'false') out.push('expanded=' + expanded);
    return out;
  };

  const lines = [];
  let chars = 0;
  let cut = false;
  const emit = (depth, line) => {
    if (cut) return;
    if (lines.length >= MAX_LINES || chars + line.length > MAX_CHARS) {
      cut = true;
      return;
    }
    const text = '  '.repeat(Math.min(depth, 20)) + line;
    lines.push(text);
    chars += text.length + 1;
  };

  const refFor = (el) => {
    let ref = el.getAttribute(ATTR);
    if (!ref || seen.has(ref)) {
      ref = 'e' + next++;
      el.setAttribute(ATTR, ref);
    }
    seen.add(ref);
    return ref;
  };

  const ownText = (el) => {
    let t = '';
    for (const n of el.childNodes) if (n.nodeType === 3) t += n.nodeValue + ' ';
    return squeeze(t, TEXT_CHARS);
  };

  const walk = (root, depth, nesting = 0) => {
    // Deeper than any real page: the rest is not walked (a page cannot make the walk run away).
    if (nesting > MAX_DEPTH) return;
    for (const el of root.children) {
      if (cut) return;
      if (SKIP.has(el.tagName) || !shown(el)) continue;
      const role = roleOf(el);
      if (role && ACTIONABLE.has(role)) {
        const name = nameOf(el, role);
        const extra = details(el, role);
        emit(depth, '[' + refFor(el) + '] ' + role + (name ? ' ' + quote(name) : '') +
          (extra.length ? ' ' + extra.join(' ') : ''));
        // A link or button's text is its name; a custom widget may still hold controls.
        if (el.querySelector('a[href], button, input, select, textarea, [role], [tabindex]')) {
          walk(el, depth + 1, nesting + 1);
        }
        continue;
      }
      let inner = depth;
      if (role === 'heading') {
        emit(depth, 'heading ' + quote(textOf(el)) + ' ' + details(el, role).join(' '));
        continue;
      }
      if (role === 'img') {
        emit(depth, 'img ' + quote(nameOf(el, role)));
        continue;
      }
      if (role === 'iframe') {
        const name = nameOf(el, role);
        emit(depth, 'iframe' + (name ? ' ' + quote(name) : '') + ' (its content is not included)');
        continue;
      }
      if (role) {
        const name = nameOf(el, role);
        emit(depth, role + (name ? ' ' + quote(name) : ''));
        inner = depth + 1;
      }
      // A label's text is already its control's name.
      const text = el.tagName === 'LABEL' && el.control ? '' : ownText(el);
      if (text) emit(inner, 'text ' + quote(text));
      walk(el, inner, nesting + 1);
      if (el.shadowRoot) walk(el.shadowRoot, inner, nesting + 1);
    }
  };

  if (document.body) walk(document.body, 0);
  const head = [
    'Page: ' + quote(squeeze(document.title, 200)),
    'URL: ' + squeeze(location.href, 500),
  ];
  if (cut) {
    lines.push('… the page is longer than one snapshot: scroll, or act by selector');
  }
  return head.concat(lines).join('\n');
})()
