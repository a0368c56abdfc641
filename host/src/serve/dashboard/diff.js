// The diff between two versions of a resource, as `GET …/diff?from=N&to=M` answers it (as
// `orch data diff --json`: `added`/`removed` {path: value}, `changed` {path: {from, to}}).

import { h } from './dom.js';

function show(value) {
  return JSON.stringify(value);
}

/** Renders a diff answer: one line per added, removed or changed field. */
export function diffView(diff) {
  const lines = [];
  for (const [path, value] of Object.entries(diff?.removed || {})) {
    lines.push(h('div', { class: 'removed' }, `- ${path}: ${show(value)}`));
  }
  for (const [path, change] of Object.entries(diff?.changed || {})) {
    lines.push(h('div', { class: 'changed', 'data-path': path }, `~ ${path}: ${show(change?.from)} → ${show(change?.to)}`));
  }
  for (const [path, value] of Object.entries(diff?.added || {})) {
    lines.push(h('div', { class: 'added' }, `+ ${path}: ${show(value)}`));
  }
  if (diff?.retired) lines.push(h('div', { class: 'removed' }, 'retired'));
  const title = h('p', { class: 'muted' }, `v${diff?.from} → v${diff?.to}`);
  if (lines.length === 0) return [title, h('p', { class: 'muted', id: 'diff-empty' }, 'No changes between these versions.')];
  return [title, h('pre', { class: 'diff', id: 'diff-lines' }, lines)];
}
