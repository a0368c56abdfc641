// The orch dashboard: one page, hash routes, plain DOM. Every value from the API is inserted as
// text (see dom.js); nothing is parsed as HTML.

import { api, openStream, path, token, ApiError } from './api.js';
import { readEventStream } from './sse.js';
import { h, replace, link, route, table, when, duration, errorBox } from './dom.js';
import { inputsForm } from './form.js';
import { dagSvg } from './dag.js';
import { diffView } from './diff.js';

const main = () => document.getElementById('main');
let pageAbort = new AbortController();

const routes = [
  [/^login$/, loginPage, { public: true }],
  [/^fleet$/, fleetPage],
  [/^runs$/, runsPage],
  [/^runs\/([^/]+)$/, runPage],
  [/^workflows$/, workflowsPage],
  [/^workflows\/([^/]+)$/, workflowPage],
  [/^resource\/([^/]+)\/(.+)$/, resourcePage],
  [/^schedules$/, schedulesPage],
];

function current() {
  return location.hash.replace(/^#\/?/, '');
}

/** Shows the page of the current hash; an open page (and its live stream) is stopped first. */
async function render() {
  pageAbort.abort();
  pageAbort = new AbortController();
  const signal = pageAbort.signal;
  const hash = current();
  const [, page, options] = routes.find(([re]) => re.test(hash)) || [null, null, {}];
  if (!page) {
    location.hash = token.get() ? '#/fleet' : '#/login';
    return;
  }
  if (!options?.public && !token.get()) {
    location.hash = '#/login';
    return;
  }
  const args = hash.match(routes.find(([re]) => re.test(hash))[0]).slice(1).map(decodeURIComponent);
  markNav(hash);
  document.getElementById('nav').hidden = !token.get();
  document.getElementById('logout').hidden = !token.get();
  const into = replace(main(), h('p', { class: 'muted' }, 'Loading…'));
  try {
    await page(into, signal, ...args);
  } catch (e) {
    if (signal.aborted) return;
    replace(into, errorBox(e instanceof Error ? e.message : String(e)));
  }
}

function markNav(hash) {
  for (const a of document.querySelectorAll('#nav a')) {
    const target = a.getAttribute('href').slice(2);
    a.classList.toggle('active', hash === target || hash.startsWith(target + '/'));
  }
}

function statusText(status, kind = 'run') {
  return h('span', { class: `status ${kind}-${String(status || 'unknown').toLowerCase()}` }, status || 'unknown');
}

// ---------------------------------------------------------------- login

function loginPage(into) {
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'off', placeholder: 'orch_…', required: true });
  const problem = h('div', { id: 'login-error' });
  const refused = sessionStorage.getItem('orch.refused');
  sessionStorage.removeItem('orch.refused');
  if (refused) replace(problem, errorBox(`Token refused: ${refused}`));
  const form = h('form', { class: 'card', id: 'login-form', onsubmit: (e) => { e.preventDefault(); login(input.value.trim(), problem); } },
    h('h1', {}, 'Log in'),
    h('p', { class: 'muted' }, 'Paste an API token made with ', h('code', {}, 'orch token create NAME --scope read|run|admin'), '.'),
    h('label', { for: 'token' }, 'Token'),
    input,
    h('button', { type: 'submit', id: 'login-submit' }, 'Log in'),
    problem);
  replace(into, form);
  input.focus();
}

async function login(value, problem) {
  replace(problem);
  if (!value) return;
  try {
    // Checked before it is kept: a refused token never reaches sessionStorage.
    await api(path('whoami'), { candidate: value });
  } catch (e) {
    replace(problem, errorBox(e instanceof ApiError && e.status === 401
      ? `Token refused: ${e.message}` : `Cannot log in: ${e.message}`));
    return;
  }
  token.set(value);
  await showWhoami();
  location.hash = '#/fleet';
}

async function showWhoami() {
  const el = document.getElementById('whoami');
  try {
    const me = await api(path('whoami'));
    const scope = me.workflows ? `${me.scope}: ${me.workflows.join(', ')}` : me.scope;
    replace(el, `${me.name} (${scope})`);
  } catch {
    replace(el);
  }
}

function logout() {
  token.clear();
  replace(document.getElementById('whoami'));
  location.hash = '#/login';
}

// ---------------------------------------------------------------- fleet

// Guests get the name / vmid / status / IP table; other types a generic one.
const VM_TYPES = new Set(['proxmox/vm', 'proxmox/lxc']);

function attr(attributes, ...keys) {
  for (const k of keys) {
    const v = attributes?.[k];
    if (v !== undefined && v !== null && v !== '') return v;
  }
  return '';
}

function vmIp(a) {
  const ip = attr(a, 'ip', 'ipAddress', 'ipv4', 'address');
  if (ip) return Array.isArray(ip) ? ip.join(', ') : String(ip);
  return '';
}

function summary(attributes) {
  if (!attributes || typeof attributes !== 'object') return String(attributes ?? '');
  const parts = [];
  for (const [k, v] of Object.entries(attributes)) {
    if (v === null || typeof v === 'object') continue;
    parts.push(`${k}=${v}`);
    if (parts.length >= 4) break;
  }
  return parts.join('  ');
}

async function fleetPage(into, signal) {
  const models = await api(path('models'), { signal });
  const list = Array.isArray(models) ? models : models.models || [];
  const sections = await Promise.all(list.map((m) => modelSection(m, signal)));
  replace(into, h('h1', {}, 'Fleet ', refreshButton()),
    sections.filter(Boolean).length ? sections.filter(Boolean) : h('p', { class: 'muted' }, 'No resources yet: run a sync.'));
}

async function modelSection(model, signal) {
  const name = model.name;
  const type = model.type || model.typeName || '';
  const resources = (await api(path('data', name), { signal })).filter((r) => !r.retired);
  if (resources.length === 0) return null;
  const full = await Promise.all(resources.map((r) =>
    api(`${path('data', name)}/${resourcePath(r)}`, { signal }).catch(() => null)));
  const isVm = VM_TYPES.has(type);
  const headers = isVm ? ['Name', 'VMID', 'Status', 'IP', 'Version', 'Updated'] : ['Resource', 'Spec', 'Attributes', 'Version', 'Updated'];
  const rows = resources.map((r, i) => {
    const a = full[i]?.attributes || {};
    const history = h('a', { href: route('resource', name, resourceName(r)) }, isVm ? String(attr(a, 'vmName', 'name', 'hostname') || r.name) : r.name);
    return isVm
      ? [history, String(attr(a, 'vmid')), statusText(attr(a, 'status'), 'vm'), vmIp(a), `v${r.latest}`, when(r.writtenAt)]
      : [history, r.spec, summary(a), `v${r.latest}`, when(r.writtenAt)];
  });
  return h('section', { class: 'model', 'data-model': name },
    h('h2', {}, name, h('span', { class: 'type' }, type)),
    table(headers, rows, { class: isVm ? 'fleet vms' : 'fleet' }));
}

/** The name the data routes take: `spec/name` so that a name under several specs is unique. */
function resourceName(r) {
  return `${r.spec}/${r.name}`;
}

function resourcePath(r) {
  return `${encodeURIComponent(r.spec)}/${encodeURIComponent(r.name)}`;
}

// ---------------------------------------------------------------- runs

async function runsPage(into, signal) {
  const runs = await api(`${path('runs')}?limit=100`, { signal });
  const rows = runs.map((r) => [link(r.id, 'runs', r.id), r.kind, r.target,
    [statusText(r.status), r.waiting ? h('div', { class: 'muted' }, waitingText(r.waiting)) : null],
    when(r.startedAt), duration(r.durationMs)]);
  replace(into, h('h1', {}, 'Runs ', refreshButton()),
    rows.length ? table(['Run', 'Kind', 'Target', 'Status', 'Started', 'Took'], rows, { id: 'runs' }) : h('p', { class: 'muted' }, 'No runs yet.'));
}

/** What a waiting run waits for (the runs list gives the steps and their messages). */
function waitingText(waiting) {
  const list = Array.isArray(waiting) ? waiting : [waiting];
  return list.map((w) => (typeof w === 'string' ? w : [w.job ? `${w.job}.${w.step}` : w.step, w.message].filter(Boolean).join(': '))).join('; ');
}

function refreshButton() {
  return h('button', { type: 'button', class: 'secondary refresh', onclick: () => render() }, 'Refresh');
}

function eventLine(e) {
  switch (e.event) {
    case 'runStarted': return [`run ${e.runId} started: ${e.kind} ${e.target}`, 'event'];
    case 'stepStarted': return [`▶ ${e.step}${e.model ? ` (${e.model}.${e.method})` : ''}`, 'event'];
    case 'log': return [`  [${e.step}] ${e.level}: ${e.message}`, `level-${e.level}`];
    case 'resourceWritten': return [`  [${e.step}] wrote ${e.model}/${e.spec}/${e.name} v${e.version}`, 'event'];
    case 'stepFinished': return [`■ ${e.step} ${e.status} in ${duration(e.durationMs)}${e.error ? `: ${e.error}` : ''}`, ['failed', 'cancelled'].includes(e.status) ? 'level-error' : 'event'];
    case 'runFinished': return [`run ${e.status} in ${duration(e.durationMs)}`, e.status === 'succeeded' ? 'event' : 'level-error'];
    default: return [JSON.stringify(e), ''];
  }
}

async function runPage(into, signal, id) {
  let record;
  try {
    record = await api(path('runs', id), { signal });
  } catch (e) {
    // A run started a moment ago may have no record yet; its live events tell what it is.
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    record = { id, status: 'running' };
  }
  const status = h('span', { id: 'run-status' }, statusText(record.status));
  const kind = h('span', {}, record.kind ?? '');
  const target = h('span', {}, record.target ?? '');
  const started = h('span', {}, when(record.startedAt));
  const log = h('pre', { class: 'log', id: 'run-log', 'aria-live': 'polite' });
  const state = h('p', { id: 'run-state', class: 'muted' }, 'Connecting to the live log…');
  const problem = h('div');
  const cancel = h('button', { type: 'button', id: 'run-cancel', class: 'secondary', hidden: record.status !== 'running' }, 'Cancel run');
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try {
      await api(`${path('runs', id)}/cancel`, { method: 'POST' });
    } catch (e) {
      replace(problem, errorBox(e.message));
      cancel.disabled = false;
    }
  });
  replace(into,
    h('h1', {}, `Run ${record.id || id}`),
    table(['Kind', 'Target', 'Status', 'Started'], [[kind, target, status, started]]),
    cancel, problem,
    h('h2', {}, 'Log'), state, log);
  const response = await openStream(`${path('runs', id)}/events`, signal);
  replace(state, 'Live');
  state.dataset.state = 'live';
  await readEventStream(response, ({ event, data }) => {
    let e;
    try { e = JSON.parse(data); } catch { e = { event, message: data }; }
    if (!e.event) e.event = event;
    const [text, cls] = eventLine(e);
    log.append(h('div', { class: cls, 'data-event': e.event }, text));
    log.scrollTop = log.scrollHeight;
    if (e.event === 'runStarted') {
      replace(kind, e.kind ?? '');
      replace(target, e.target ?? '');
    }
    if (e.event === 'runFinished') {
      cancel.hidden = true;
      replace(status, statusText(e.status));
      replace(state, `Finished: ${e.status}`);
      state.dataset.state = 'finished';
      state.dataset.status = e.status;
    }
  }, signal);
  const again = await api(path('runs', id), { signal }).catch(() => null);
  if (again) replace(started, when(again.startedAt));
  if (again && state.dataset.state !== 'finished') {
    replace(status, statusText(again.status));
    replace(state, `Stream ended: ${again.status}`);
    state.dataset.state = 'ended';
  }
}

// ---------------------------------------------------------------- resource history

async function resourcePage(into, signal, model, name) {
  const base = `${path('data', model)}/${name.split('/').map(encodeURIComponent).join('/')}`;
  const [latest, versionsAnswer] = await Promise.all([
    api(base, { signal }),
    api(`${base}/versions`, { signal }),
  ]);
  const versions = Array.isArray(versionsAnswer) ? versionsAnswer : versionsAnswer.versions || [];
  const numbers = versions.map((v) => v.version).sort((a, b) => a - b);
  const last = numbers[numbers.length - 1] ?? latest.version ?? 1;
  const from = h('select', { id: 'diff-from' }, numbers.map((n) => h('option', { value: n }, `v${n}`)));
  const to = h('select', { id: 'diff-to' }, numbers.map((n) => h('option', { value: n }, `v${n}`)));
  from.value = String(numbers.length > 1 ? numbers[numbers.length - 2] : last);
  to.value = String(last);
  const out = h('div', { id: 'diff' });
  const show = async () => {
    if (numbers.length < 2) {
      replace(out, h('p', { class: 'muted', id: 'diff-single' }, 'Only one version so far: nothing to compare.'));
      return;
    }
    if (from.value === to.value) {
      replace(out, h('p', { class: 'muted', id: 'diff-same' }, 'Pick two different versions to compare.'));
      return;
    }
    try {
      const diff = await api(`${base}/diff?from=${encodeURIComponent(from.value)}&to=${encodeURIComponent(to.value)}`, { signal });
      replace(out, diffView(diff));
    } catch (e) {
      replace(out, errorBox(e.message));
    }
  };
  from.addEventListener('change', show);
  to.addEventListener('change', show);
  const rows = versions.map((v) => {
    const p = v.provenance || {};
    return [`v${v.version}`, when(p.time), p.runId ? link(p.runId, 'runs', p.runId) : '', p.method || '', p.step || ''];
  });
  replace(into,
    h('h1', {}, `${model} / ${name}`),
    h('h2', {}, 'Latest attributes'),
    h('pre', { class: 'diff', id: 'attributes' }, JSON.stringify(latest.attributes ?? latest, null, 2)),
    h('h2', {}, 'Versions'),
    table(['Version', 'Written', 'Run', 'Method', 'Step'], rows, { id: 'versions' }),
    h('h2', {}, 'Diff'),
    h('div', { class: 'card' }, 'From ', from, ' to ', to),
    out);
  await show();
}

// ---------------------------------------------------------------- workflows

async function workflowsPage(into, signal) {
  const workflows = await api(path('workflows'), { signal });
  const rows = workflows.map((w) => [link(w.name, 'workflows', w.name), w.description || '']);
  replace(into, h('h1', {}, 'Workflows'), table(['Workflow', 'Description'], rows, { id: 'workflows' }));
}

async function workflowPage(into, signal, name) {
  const wf = await api(path('workflows', name), { signal });
  const problem = h('div', { id: 'start-error' });
  const form = inputsForm(wf.inputs, async (inputs) => {
    replace(problem);
    try {
      const started = await api(path('runs'), { method: 'POST', body: { workflow: name, inputs } });
      location.hash = route('runs', started.id);
    } catch (e) {
      replace(problem, errorBox(e.message));
    }
  });
  const triggers = Array.isArray(wf.triggers) ? wf.triggers : [];
  replace(into,
    h('h1', {}, `Workflow ${wf.name || name}`),
    wf.description ? h('p', {}, wf.description) : null,
    h('h2', {}, 'Start'), form, problem,
    h('h2', {}, 'Graph'), dagSvg(wf),
    triggers.length ? [h('h2', {}, 'Triggers'), h('pre', { class: 'diff' }, JSON.stringify(triggers, null, 2))] : null);
}

// ---------------------------------------------------------------- schedules

async function schedulesPage(into, signal) {
  let schedules;
  try {
    schedules = await api(path('schedules'), { signal });
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) schedules = [];
    else throw e;
  }
  const rows = schedules.map((s) => [
    link(s.workflow, 'workflows', s.workflow), s.trigger ?? '', s.schedule ?? '',
    when(s.lastRun), s.lastRunId ? link(s.lastRunId, 'runs', s.lastRunId) : '',
    s.lastStatus ? statusText(s.lastStatus) : '', when(s.nextRun), String(s.skipped ?? 0)]);
  replace(into, h('h1', {}, 'Schedules'),
    rows.length
      ? table(['Workflow', 'Trigger', 'Schedule', 'Last run', 'Run', 'Status', 'Next run', 'Skipped'], rows, { id: 'schedules' })
      : h('p', { class: 'muted', id: 'no-schedules' }, 'No schedules.'));
}

// ---------------------------------------------------------------- start

window.addEventListener('orch-unauthorized', (e) => {
  if (current() === 'login') return;
  token.clear();
  replace(document.getElementById('whoami'));
  sessionStorage.setItem('orch.refused', e.detail || 'unauthorized');
  location.hash = '#/login';
});
window.addEventListener('hashchange', render);
document.getElementById('logout').addEventListener('click', logout);
if (token.get()) showWhoami();
render();
