// A workflow's DAG as SVG, from the graph JSON (`orch workflow graph --json`): one box per step,
// columns by dependency depth, arrows from a step to the steps waiting for it. A job waiting for
// another job is drawn as arrows from that job's last steps to its first ones.

import { svg, h } from './dom.js';

const BOX_W = 190;
const BOX_H = 44;
const GAP_X = 70;
const GAP_Y = 22;
const PAD = 16;

function clip(text, max) {
  const s = String(text ?? '');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function taskText(task) {
  if (!task || typeof task === 'string') return task || '';
  if (task.modelIdOrName) return `${task.modelIdOrName}.${task.methodName ?? ''}`;
  if (task.workflowIdOrName || task.workflow) return `workflow ${task.workflowIdOrName || task.workflow}`;
  return task.type || '';
}

// `dependsOn` holds names in the graph JSON and `{step|job, condition}` in the workflow JSON.
function depName(dep) {
  return typeof dep === 'string' ? dep : dep?.step ?? dep?.job ?? '';
}

/** The nodes (`job.step`) and edges of `graph` (an object with `jobs`). */
export function dagModel(graph) {
  const jobs = (graph && (graph.graph?.jobs || graph.jobs)) || [];
  const nodes = new Map();
  const edges = [];
  const firstOf = new Map();
  const lastOf = new Map();
  for (const job of jobs) {
    const steps = job.steps || [];
    const needed = new Set();
    for (const step of steps) {
      const id = `${job.name}.${step.name}`;
      nodes.set(id, { id, job: job.name, step: step.name, task: taskText(step.task) });
      for (const dep of (step.dependsOn || []).map(depName)) {
        edges.push([`${job.name}.${dep}`, id]);
        needed.add(dep);
      }
    }
    firstOf.set(job.name, steps.filter((s) => !(s.dependsOn || []).length).map((s) => `${job.name}.${s.name}`));
    lastOf.set(job.name, steps.filter((s) => !needed.has(s.name)).map((s) => `${job.name}.${s.name}`));
  }
  for (const job of jobs) {
    for (const dep of (job.dependsOn || []).map(depName)) {
      for (const from of lastOf.get(dep) || []) {
        for (const to of firstOf.get(job.name) || []) edges.push([from, to]);
      }
    }
  }
  const valid = edges.filter(([a, b]) => nodes.has(a) && nodes.has(b));
  // Depth = longest path from a step nothing waits on; the graph is validated acyclic, but a
  // bound keeps a malformed answer from looping.
  const depth = new Map([...nodes.keys()].map((id) => [id, 0]));
  for (let pass = 0; pass < nodes.size; pass++) {
    let changed = false;
    for (const [a, b] of valid) {
      if (depth.get(b) < depth.get(a) + 1) {
        depth.set(b, depth.get(a) + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return { nodes: [...nodes.values()], edges: valid, depth };
}

/** The SVG drawing of `graph`. */
export function dagSvg(graph) {
  const { nodes, edges, depth } = dagModel(graph);
  if (nodes.length === 0) return h('p', { class: 'muted' }, 'This workflow has no steps.');
  const columns = [];
  for (const n of nodes) {
    const d = depth.get(n.id);
    (columns[d] ||= []).push(n);
  }
  const at = new Map();
  columns.forEach((column, x) => column.forEach((n, y) => {
    at.set(n.id, { x: PAD + x * (BOX_W + GAP_X), y: PAD + y * (BOX_H + GAP_Y) });
  }));
  const rows = Math.max(...columns.map((c) => (c ? c.length : 0)));
  const width = PAD * 2 + columns.length * BOX_W + (columns.length - 1) * GAP_X;
  const height = PAD * 2 + rows * BOX_H + (rows - 1) * GAP_Y;
  const drawing = svg('svg', { class: 'dag', id: 'dag', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'workflow graph' },
    svg('defs', {}, svg('marker', { id: 'dag-arrow', viewBox: '0 0 10 10', refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }))),
    edges.map(([a, b]) => {
      const p = at.get(a);
      const q = at.get(b);
      const x1 = p.x + BOX_W;
      const y1 = p.y + BOX_H / 2;
      const x2 = q.x;
      const y2 = q.y + BOX_H / 2;
      const mid = (x1 + x2) / 2;
      return svg('path', { d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`, 'marker-end': 'url(#dag-arrow)', 'data-from': a, 'data-to': b });
    }),
    nodes.map((n) => {
      const { x, y } = at.get(n.id);
      return svg('g', { class: 'node', 'data-step': n.id },
        svg('title', {}, `${n.id}: ${n.task}`),
        svg('rect', { x, y, width: BOX_W, height: BOX_H, rx: 6 }),
        svg('text', { x: x + 8, y: y + 18 }, clip(n.id, 28)),
        svg('text', { x: x + 8, y: y + 35, class: 'task' }, clip(n.task, 30)));
    }));
  return drawing;
}
