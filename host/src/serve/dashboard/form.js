// A form built from a workflow's inputs JSON Schema: string, number, integer, boolean and enum
// fields, with required marks and defaults. Unknown shapes fall back to a JSON text field.

import { h, errorBox, replace } from './dom.js';

function kind(schema) {
  if (Array.isArray(schema.enum)) return 'enum';
  const t = Array.isArray(schema.type) ? schema.type.find((x) => x !== 'null') : schema.type;
  if (['string', 'number', 'integer', 'boolean'].includes(t)) return t;
  return 'json';
}

function field(name, schema, required) {
  const id = `input-${name}`;
  const k = kind(schema);
  const hasDefault = Object.prototype.hasOwnProperty.call(schema, 'default');
  let control;
  if (k === 'enum') {
    control = h('select', { id, name },
      required ? null : h('option', { value: '' }, '(none)'),
      schema.enum.map((v, i) => h('option', { value: String(i) }, typeof v === 'string' ? v : JSON.stringify(v))));
    const at = hasDefault ? schema.enum.findIndex((v) => JSON.stringify(v) === JSON.stringify(schema.default)) : -1;
    control.value = at >= 0 ? String(at) : (required ? '0' : '');
  } else if (k === 'boolean') {
    control = h('input', { id, name, type: 'checkbox' });
    control.checked = hasDefault ? Boolean(schema.default) : false;
  } else if (k === 'number' || k === 'integer') {
    control = h('input', { id, name, type: 'number', step: k === 'integer' ? '1' : 'any',
      min: schema.minimum, max: schema.maximum, required: required && !hasDefault });
    if (hasDefault) control.value = String(schema.default);
  } else if (k === 'string') {
    control = h('input', { id, name, type: schema.writeOnly || /password|secret|token/i.test(name) ? 'password' : 'text',
      required: required && !hasDefault, minlength: schema.minLength, maxlength: schema.maxLength });
    if (hasDefault) control.value = String(schema.default);
  } else {
    control = h('textarea', { id, name, rows: 3, placeholder: 'JSON' });
    if (hasDefault) control.value = JSON.stringify(schema.default, null, 2);
  }
  const label = h('label', { for: id }, name, required ? ' *' : '',
    schema.description ? h('span', { class: 'hint' }, schema.description) : null);
  const read = () => {
    if (k === 'enum') return control.value === '' ? undefined : schema.enum[Number(control.value)];
    if (k === 'boolean') return control.checked;
    if (control.value === '') return undefined;
    if (k === 'number') return Number(control.value);
    if (k === 'integer') {
      const n = Number(control.value);
      if (!Number.isInteger(n)) throw new Error(`${name} must be a whole number`);
      return n;
    }
    if (k === 'string') return control.value;
    try {
      return JSON.parse(control.value);
    } catch (e) {
      throw new Error(`${name} is not valid JSON: ${e.message}`);
    }
  };
  return { node: h('div', { class: 'field' }, label, control), name, read, required, hasDefault };
}

/** A form for `schema` (an object schema, or none); `onSubmit(inputs)` gets the typed values. */
export function inputsForm(schema, onSubmit) {
  const properties = (schema && schema.properties) || {};
  const required = new Set((schema && schema.required) || []);
  const fields = Object.entries(properties).map(([name, s]) => field(name, s || {}, required.has(name)));
  const problem = h('div', { class: 'form-error' });
  const form = h('form', { class: 'card', id: 'start-form', novalidate: true },
    fields.length ? fields.map((f) => f.node) : h('p', { class: 'muted' }, 'This workflow takes no inputs.'),
    h('button', { type: 'submit', id: 'start-submit' }, 'Start run'),
    problem);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    replace(problem);
    const inputs = {};
    try {
      for (const f of fields) {
        const value = f.read();
        if (value === undefined) {
          if (f.required && !f.hasDefault) throw new Error(`${f.name} is required`);
          continue;
        }
        inputs[f.name] = value;
      }
    } catch (err) {
      replace(problem, errorBox(err.message));
      return;
    }
    onSubmit(inputs);
  });
  return form;
}
