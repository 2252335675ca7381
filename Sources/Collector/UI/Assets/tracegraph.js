// Graph view of one trace: a node per (service, operation) with its call count and self time, an
// edge per caller → callee with the number of calls, laid out by the layered layout.
import { h, fmtDuration } from './dom.js';
import { drawGraph } from './graphdraw.js';
import { selfTimes } from './tracestats.js';

// Past this many edges the busiest are drawn and the rest counted: a graph of thousands of
// edges is unreadable, and the layout's time grows with the long edges' dummy nodes.
export const MAX_EDGES = 400;

export function aggregate(model) {
  const self = selfTimes(model);
  const nodes = new Map(), edges = new Map();
  const keyOf = (sp) => JSON.stringify([sp.service, sp.name]);
  for (const sp of model.spans) {
    const k = keyOf(sp);
    let n = nodes.get(k);
    if (!n) nodes.set(k, n = { id: k, service: sp.service, operation: sp.name, count: 0, errors: 0, total: 0, self: 0, slowest: sp });
    n.count++; n.total += sp.duration; n.self += self.get(sp);
    if (sp.error) n.errors++;
    if (sp.duration > n.slowest.duration) n.slowest = sp;
    if (sp.parent) {
      const ek = keyOf(sp.parent) + '>' + k;
      let e = edges.get(ek);
      if (!e) edges.set(ek, e = { source: keyOf(sp.parent), target: k, calls: 0, errors: 0 });
      e.calls++;
      if (sp.error) e.errors++;
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()] };
}

export function mountTraceGraph(container, env) {
  const { model } = env;
  const agg = aggregate(model);
  const all = agg.edges.length;
  const edges = all > MAX_EDGES ? agg.edges.slice().sort((a, b) => b.calls - a.calls || (a.source < b.source ? -1 : 1)).slice(0, MAX_EDGES) : agg.edges;
  const byId = new Map(agg.nodes.map((n) => [n.id, n]));
  const graph = {
    nodes: agg.nodes.map((n) => ({ id: n.id, type: 'operation', service: n.service, label: n.operation,
      health: n.errors ? 'failure' : 'healthy', rps: 0, sub: `×${n.count} · self ${fmtDuration(n.self)}` })),
    edges: edges.map((e) => ({ source: e.source, target: e.target, health: e.errors ? 'failure' : 'healthy', rps: 0, requests: e.calls,
      errorRate: e.errors / e.calls, label: `×${e.calls}` })),
  };
  let labels = 'calls';
  const labelToggle = h('input', { type: 'checkbox', id: 'tgraph-labels', checked: true });
  env.tools.replaceChildren(h('label', { class: 'inline' }, labelToggle, ' Call counts on edges'));
  const wrap = h('div', { class: 'tgraph-wrap' });
  const view = h('div', { class: 'view-body', id: 'trace-graph' }, wrap);
  container.replaceChildren(view);
  const note = h('p', { class: 'muted tgraph-note' },
    `${agg.nodes.length} operations, ${all} caller → callee pairs` + (all > MAX_EDGES ? ` (the ${MAX_EDGES} with the most calls drawn)` : '') +
    '. Click an operation to open its slowest span.');
  const draw = () => {
    const svg = drawGraph(graph, { id: 'trace-graph-svg', kind: 'operation', labels, animate: false, selection: null,
      onSelect: (sel) => { if (sel && sel.node && byId.get(sel.node)) env.select(byId.get(sel.node).slowest); } });
    wrap.replaceChildren(note, svg);
  };
  labelToggle.addEventListener('change', () => { labels = labelToggle.checked ? 'calls' : 'none'; draw(); });
  draw();
  return { focus() { view.focus(); } };
}
