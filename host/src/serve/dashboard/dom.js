// DOM helpers. Text from the server only ever goes in as text nodes or attribute values set
// through the DOM, never as HTML, so a VM named `<img src=x onerror=alert(1)>` stays text.

/** An element `tag` with attributes `attrs` (`on*` keys are listeners) and `children`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element `tag` with attributes `attrs` and `children`. */
export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.setAttribute('class', String(value));
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `el` with `children`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A link to the dashboard route `parts` (each part URL-encoded). */
export function link(text, ...parts) {
  return h('a', { href: route(...parts) }, text);
}

/** The hash of the dashboard route `parts` (each part URL-encoded). */
export function route(...parts) {
  return '#/' + parts.map((p) => encodeURIComponent(String(p))).join('/');
}

/** A table with `headers` and `rows` (arrays of cells: text or nodes). */
export function table(headers, rows, attrs = {}) {
  return h('table', attrs,
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {}, t)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, row.map((c) => h('td', {}, c))))));
}

/** A date as local time, or '' for none. */
export function when(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toLocaleString();
}

/** A duration in ms as `1.2 s`. */
export function duration(ms) {
  if (ms === null || ms === undefined) return '';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** An error box. */
export function errorBox(message) {
  return h('p', { class: 'error', role: 'alert' }, String(message));
}
