// Small DOM helpers shared by every screen: element building, labelled fields, forms that show a
// problem's `detail` and field errors, modal dialogs, tables, progress on buttons, and formatting.

/** Builds an element: `h("button", {class: "x", onclick}, "Save")`. */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k in el && typeof v !== "string") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let uid = 0;

/** A labelled input; `input` is an element or props for an `<input>`. */
export function field(label, input, hint) {
  const control = input instanceof Node ? input : h("input", input);
  control.id ||= `f${++uid}`;
  const error = h("p", { class: "field-error", id: `${control.id}-error`, role: "alert" });
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintEl = h("p", { class: "hint", id: `${control.id}-hint` }, hint);
    control.setAttribute("aria-describedby", hintEl.id);
    parts.push(hintEl);
  }
  parts.push(error);
  return h("div", { class: "field", "data-name": control.name || "" }, parts);
}

/** A select with `[value, label]` options. */
export function select(props, options) {
  return h(
    "select",
    props,
    // `defaultSelected` (the attribute) is what a form reset returns to.
    options.map(([value, label]) => h("option", { value, defaultSelected: value === props.value }, label)),
  );
}

/** Shows an error (a Problem or any Error) in `form`: detail on top, field errors by name. */
export function showError(container, err) {
  const box = container.querySelector(":scope > .form-error") || container.querySelector(".form-error");
  for (const e of container.querySelectorAll(".field-error")) e.textContent = "";
  for (const c of container.querySelectorAll("[aria-invalid]")) c.removeAttribute("aria-invalid");
  if (!err) {
    if (box) box.textContent = "";
    return;
  }
  const errors = err.errors || {};
  // A nested field (`fingerprint.locale`, `actions[0].selector`) is shown on the field of its
  // last name; one with no field in the form is spelled out with the summary.
  const unplaced = [];
  for (const [name, message] of Object.entries(errors)) {
    const leaf = name.split(".").pop().replace(/\[\d+\]$/, "");
    const f = container.querySelector(`.field[data-name="${CSS.escape(name)}"]`)
      || container.querySelector(`.field[data-name="${CSS.escape(leaf)}"]`);
    if (f) {
      f.querySelector(".field-error").textContent = message;
      f.querySelector("input, select, textarea")?.setAttribute("aria-invalid", "true");
    } else {
      unplaced.push(`${name} ${message}.`);
    }
  }
  const text = [err.message || String(err), ...unplaced].join(" ");
  if (box) box.textContent = text;
  else toast(text, "error");
}

/**
 * A form: `fields` are elements; `onsubmit(values, form)` may throw a Problem, which is shown.
 * The submit button shows progress while it runs.
 */
export function form(fields, submitLabel, onsubmit, extra = []) {
  const button = h("button", { type: "submit", class: "primary" }, submitLabel);
  const f = h("form", { novalidate: true }, h("p", { class: "form-error", role: "alert" }), fields, h("div", { class: "actions" }, button, extra));
  f.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError(f, null);
    const values = {};
    for (const el of f.elements) {
      if (!el.name) continue;
      if (el.type === "checkbox") {
        if (el.dataset.multi) (values[el.name] ||= []).push(...(el.checked ? [el.value] : []));
        else values[el.name] = el.checked;
      } else values[el.name] = el.value.trim();
    }
    await busy(button, async () => {
      try {
        await onsubmit(values, f);
      } catch (err) {
        showError(f, err);
      }
    });
  });
  return f;
}

/** Disables `button` and marks it busy while `work` runs. */
export async function busy(button, work) {
  const label = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = `${label}…`;
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = label;
  }
}

/** A button whose click runs `work` with progress and shows any error as a toast. */
export function action(label, work, props = {}) {
  const b = h("button", { type: "button", ...props }, label);
  b.addEventListener("click", () =>
    busy(b, async () => {
      try {
        await work();
      } catch (err) {
        toast(err.message || String(err), "error");
      }
    }),
  );
  return b;
}

/** Opens a modal dialog; resolves with what `close(value)` was given (undefined on Escape). */
export function dialog(title, build) {
  return new Promise((resolve) => {
    const d = h("dialog", { "aria-labelledby": `dlg${++uid}` });
    let result;
    const close = (value) => {
      result = value;
      d.close();
    };
    d.append(h("h2", { id: `dlg${uid}` }, title), build(close));
    d.addEventListener("close", () => {
      d.remove();
      resolve(result);
    });
    document.body.append(d);
    d.showModal();
  });
}

/** Shows a secret once, with a copy button and a warning that it will not be shown again. */
export function reveal(title, label, secret) {
  return dialog(title, (close) => {
    const value = h("input", { readonly: true, value: secret, class: "secret", "aria-label": label });
    const copied = h("span", { role: "status", class: "hint" });
    return h(
      "div",
      {},
      h("p", {}, `Copy the ${label} now: it is shown only once.`),
      value,
      h(
        "div",
        { class: "actions" },
        h("button", {
          type: "button",
          class: "primary",
          onclick: async () => {
            value.select();
            try {
              await navigator.clipboard.writeText(secret);
              copied.textContent = "Copied.";
            } catch {
              copied.textContent = "Press Ctrl+C to copy.";
            }
          },
        }, "Copy"),
        h("button", { type: "button", onclick: () => close(true) }, "Done"),
        copied,
      ),
    );
  });
}

/** Asks to confirm a destructive action. */
export function confirmAction(title, text, verb = "Confirm") {
  return dialog(title, (close) =>
    h("div", {}, h("p", {}, text), h("div", { class: "actions" },
      h("button", { type: "button", class: "danger", onclick: () => close(true) }, verb),
      h("button", { type: "button", onclick: () => close(false) }, "Cancel"))),
  );
}

/** A table: `columns` are `[header, row => cell]`. */
export function table(columns, rows, empty = "Nothing here yet.") {
  if (rows.length === 0) return h("p", { class: "empty" }, empty);
  // In a box of its own that scrolls sideways when the table is wider than the screen.
  return h("div", { class: "table-wrap" }, h(
    "table",
    {},
    h("thead", {}, h("tr", {}, columns.map(([name]) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.map((row) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row)))))),
  ));
}

let toasts;

/** A short message in a live region. */
export function toast(message, kind = "info") {
  toasts ||= document.body.appendChild(h("div", { class: "toasts", role: "status", "aria-live": "polite" }));
  const t = h("p", { class: `toast ${kind}` }, message);
  toasts.append(t);
  setTimeout(() => t.remove(), kind === "error" ? 8000 : 4000);
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return h("time", { datetime: iso, title: iso }, d.toLocaleString());
}

export function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i += 1;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function badge(text) {
  return h("span", { class: `badge badge-${String(text).replace(/[^a-z_]/gi, "")}` }, text);
}

/** A link inside the app (handled by the router). */
/** A titled section of a screen (its heading names it for assistive technology). */
export function section(heading, ...children) {
  return h("section", { "aria-label": heading }, h("h2", {}, heading), children);
}

export function link(href, ...children) {
  return h("a", { href, "data-link": "" }, children);
}
