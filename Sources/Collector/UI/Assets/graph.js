// Service graph (what Kiali draws), from /api/meshtrace/graph, and the per-operation dependency
// graph (Jaeger's deep dependency graph) from /api/meshtrace/graph/operations.
// Deep link: /graph?lookback=5m[&view=operations[&service=S&operation=O]][&focus=node][&labels=rps]
//            [&node=x | &from=a&to=b]
import { h, s, state, fmtNumber, registerServices } from './dom.js';
import { getJSON } from './api.js';
import { drawGraph, nodeShape, scaleGraph, EDGE_LABELS } from './graphdraw.js';
import { emptySide, serviceSide, operationSide } from './graphside.js';

const WINDOWS = [['1m', 'Last minute'], ['5m', 'Last 5 minutes'], ['1h', 'Last hour']];
const REFRESH_MS = 10000;
const ANIMATE_KEY = 'meshtrace.graph.animate';

function animationPreference() {
  try {
    const saved = localStorage.getItem(ANIMATE_KEY);
    if (saved) return saved === 'on';
  } catch { /* private mode */ }
  return !matchMedia('(prefers-reduced-motion: reduce)').matches;
}

// Focus mode: the node, its callers and callees, and the edges among them.
export function focusGraph(data, id) {
  if (!id || !data.nodes.some((n) => n.id === id)) return data;
  const keep = new Set([id]);
  for (const e of data.edges) {
    if (e.source === id) keep.add(e.target);
    if (e.target === id) keep.add(e.source);
  }
  return { ...data, nodes: data.nodes.filter((n) => keep.has(n.id)), edges: data.edges.filter((e) => keep.has(e.source) && keep.has(e.target)) };
}

// /api/meshtrace/graph/operations -> the drawing's nodes and edges (ids are stable across loads).
function operationGraph(body) {
  const id = (n) => JSON.stringify([n.service, n.operation]);
  const nodes = body.nodes.map((n) => ({ ...n, id: id(n), label: n.operation, type: 'operation', sub: `${fmtNumber(n.rps, 2)} rps${n.errorRate ? ` · ${fmtNumber(n.errorRate * 100, 1)}% err` : ''}` }));
  const edges = body.edges.map((e) => ({ ...e, source: nodes[e.source].id, target: nodes[e.target].id }));
  return { ...body, nodes, edges };
}

export async function renderGraph(root, params, ctx) {
  let lookback = WINDOWS.some(([v]) => v === params.get('lookback')) ? params.get('lookback') : '5m';
  let view = params.get('view') === 'operations' ? 'operations' : 'services';
  let opFocus = params.get('service') && params.get('operation') ? { service: params.get('service'), operation: params.get('operation') } : null;
  const opService = params.get('service') || '';
  let focus = params.get('focus') || null;
  // Without a choice in the URL: rates on the edges, unless there are so many edges that labels
  // would hide the graph (then none, as Kiali starts).
  let labels = EDGE_LABELS.some(([v]) => v === params.get('labels')) ? params.get('labels') : null;
  const BUSY_EDGES = 40;
  let selection = params.get('node') ? { node: params.get('node') }
    : params.get('from') && params.get('to') ? { from: params.get('from'), to: params.get('to') } : null;
  let data = null;
  let scale = null; // null: fit the view
  let timer = 0;
  let stopped = false;

  const winSel = h('select', { id: 'graph-window', 'aria-label': 'Time window' }, WINDOWS.map(([v, l]) => h('option', { value: v }, l)));
  winSel.value = lookback;
  const labelSel = h('select', { id: 'graph-labels', 'aria-label': 'Edge labels' }, EDGE_LABELS.map(([v, l]) => h('option', { value: v }, l)));
  labelSel.value = labels || 'rps';
  const animate = h('input', { type: 'checkbox', id: 'graph-animate', checked: animationPreference() });
  const auto = h('input', { type: 'checkbox', id: 'graph-auto', checked: true });
  const refreshBtn = h('button', { type: 'button', class: 'btn', id: 'graph-refresh' }, 'Refresh');
  const zoomBtn = (label, id, title, f) => {
    const b = h('button', { type: 'button', class: 'btn', id, title }, label);
    b.addEventListener('click', () => { const svg = canvas.querySelector('svg.graph'); if (svg) scale = f(scaleGraph(svg, canvas, scale)); applyScale(); });
    return b;
  };
  const zoom = h('span', { class: 'zoom', role: 'group', 'aria-label': 'Zoom' },
    zoomBtn('−', 'graph-zoom-out', 'Zoom out', (c) => Math.max(0.2, c / 1.25)),
    zoomBtn('Fit', 'graph-zoom-fit', 'Fit the view', () => null),
    zoomBtn('+', 'graph-zoom-in', 'Zoom in', (c) => Math.min(2.5, c * 1.25)));
  const status = h('span', { class: 'muted', id: 'graph-status', 'aria-live': 'polite' });
  const tab = (v, label) => {
    const b = h('button', { type: 'button', class: 'tab', id: `graph-view-${v}`, role: 'tab', 'aria-selected': String(view === v) }, label);
    b.addEventListener('click', () => { if (view !== v) { view = v; selection = null; focus = null; opFocus = null; updateURL(); load(); } });
    return b;
  };
  const tabs = h('div', { class: 'tabs', role: 'tablist' }, tab('services', 'Services'), tab('operations', 'Operations'));
  const banner = h('div', { class: 'focus-banner', id: 'graph-focus', hidden: true });
  const canvas = h('div', { class: 'graph-canvas', id: 'graph-canvas' });
  const side = h('aside', { class: 'graph-side', id: 'graph-side' });
  root.replaceChildren(h('div', { class: 'graph-page' },
    h('div', { class: 'graph-tools' },
      h('h1', null, 'Service graph'), tabs,
      h('label', { class: 'inline' }, 'Window ', winSel),
      h('label', { class: 'inline' }, 'Edge labels ', labelSel),
      h('label', { class: 'inline', title: 'Dots flow at a rate that follows requests per second; red ones stand for errors' }, animate, ' Traffic animation'),
      h('label', { class: 'inline', title: `Reload every ${REFRESH_MS / 1000}s` }, auto, ` Auto-refresh (${REFRESH_MS / 1000}s)`),
      zoom, refreshBtn, status),
    h('div', { class: 'graph-body' }, h('div', { class: 'graph-main' }, banner, canvas, legend()), side)));
  ctx.focusTarget = winSel;

  function updateURL() {
    const u = new URLSearchParams({ lookback });
    if (view === 'operations') {
      u.set('view', 'operations');
      if (opFocus) { u.set('service', opFocus.service); u.set('operation', opFocus.operation); } else if (opService) u.set('service', opService);
    } else if (focus) u.set('focus', focus);
    if (labels) u.set('labels', labels);
    if (selection && selection.node) u.set('node', selection.node);
    if (selection && selection.from) { u.set('from', selection.from); u.set('to', selection.to); }
    history.replaceState(null, '', '/graph?' + u.toString());
    tabs.querySelectorAll('.tab').forEach((b) => b.setAttribute('aria-selected', String(b.id === `graph-view-${view}`)));
  }

  async function load() {
    clearTimeout(timer);
    status.textContent = 'Loading…';
    const t0 = performance.now();
    try {
      if (view === 'operations') {
        data = operationGraph((await getJSON('/api/meshtrace/graph/operations', { lookback, ...(opFocus || {}) })).body);
        registerServices(data.nodes.map((n) => n.service));
      } else {
        data = (await getJSON('/api/meshtrace/graph', { lookback })).body;
        registerServices(data.nodes.map((n) => n.id));
        for (const n of data.nodes) n.sub = n.requests ? `${fmtNumber(n.rps, 2)} rps${n.errorRate ? ` · ${fmtNumber(n.errorRate * 100, 1)}% err` : ''}` : '';
      }
      if (stopped) return;
      const tFetched = performance.now();
      draw();
      status.textContent = `Updated ${new Date().toLocaleTimeString()} · ${data.spanCount} spans in window${data.truncated ? ' (truncated: newest spans only)' : ''}`;
      // Timing for docs/performance.md: fetch, then layout and drawing up to the next frame.
      requestAnimationFrame(() => setTimeout(() => {
        window.__meshtraceGraph = { nodes: data.nodes.length, edges: data.edges.length, fetchMs: tFetched - t0, drawMs: performance.now() - tFetched, sinceNavigationMs: performance.now() };
        document.documentElement.dataset.graphLoaded = String(Date.now());
      }, 0));
    } catch (e) {
      if (stopped) return;
      canvas.replaceChildren(state('error', 'Could not load the service graph', e.message));
      status.textContent = '';
    }
    if (auto.checked && !stopped) timer = setTimeout(load, REFRESH_MS);
  }

  function draw() {
    const win = WINDOWS.find(([v]) => v === lookback)[1].toLowerCase();
    const kindOp = view === 'operations';
    const shown = kindOp ? data : focusGraph(data, focus);
    const focusName = kindOp ? (opFocus ? `${opFocus.service}: ${opFocus.operation}` : null) : (shown !== data ? focus : null);
    banner.hidden = !focusName;
    if (focusName) {
      const all = h('button', { type: 'button', class: 'btn', id: 'graph-unfocus' }, kindOp ? 'Show all operations' : 'Show the whole graph');
      all.addEventListener('click', () => (kindOp ? setOpFocus(null) : setFocus(null)));
      banner.replaceChildren(h('span', null, kindOp ? 'Only call paths through ' : 'Focused on ', h('b', null, focusName), kindOp ? '' : ' and its neighbours'), all);
    }
    if (!data.nodes.length) {
      canvas.replaceChildren(state('empty', kindOp && opFocus ? `No calls through ${focusName} in the ${win}` : `No requests in the ${win}`,
        "Is the sidecar's --collector pointing here? Or pick a longer window."));
      renderSide();
      return;
    }
    if (kindOp && opService && !opFocus) for (const n of shown.nodes) n.focus = n.service === opService;
    const shownLabels = labels || (shown.edges.length > BUSY_EDGES ? 'none' : 'rps');
    labelSel.value = shownLabels;
    const svg = drawGraph(shown, { selection, labels: shownLabels, animate: animate.checked, kind: kindOp ? 'operation' : 'service',
      onSelect: (sel) => { selection = sel; updateURL(); draw(); } });
    canvas.replaceChildren(svg);
    applyScale();
    renderSide();
  }

  function applyScale() {
    const svg = canvas.querySelector('svg.graph');
    if (svg) svg.dataset.scale = String(scaleGraph(svg, canvas, scale));
  }

  function setFocus(id) { focus = id; updateURL(); draw(); }
  function setOpFocus(f) { opFocus = f; selection = null; updateURL(); load(); }

  function renderSide() {
    if (!selection || !data) { emptySide(side, view === 'operations'); return; }
    if (view === 'operations') operationSide(side, { graph: data, selection, lookback, focus: opFocus, onFocus: setOpFocus });
    else serviceSide(side, { data, selection, lookback, focus, onFocus: setFocus });
  }

  winSel.addEventListener('change', () => { lookback = winSel.value; updateURL(); load(); });
  labelSel.addEventListener('change', () => { labels = labelSel.value; updateURL(); if (data) draw(); });
  animate.addEventListener('change', () => {
    try { localStorage.setItem(ANIMATE_KEY, animate.checked ? 'on' : 'off'); } catch { /* private mode */ }
    if (data) draw();
  });
  auto.addEventListener('change', () => { if (auto.checked) load(); else clearTimeout(timer); });
  refreshBtn.addEventListener('click', load);
  ctx.onKey = (e) => {
    if (e.key === 'Escape' && selection) { selection = null; updateURL(); draw(); return true; }
    if (e.key === 'Escape' && focus) { setFocus(null); return true; }
    if (e.key === 'r') { load(); return true; }
    return false;
  };
  updateURL();
  await load();
  return () => { stopped = true; clearTimeout(timer); };
}

// The same shapes the graph draws, so the legend is the drawing's own key.
function legend() {
  const item = (cls, label) => h('span', { class: 'legend-item' }, h('span', { class: `legend-line ${cls}` }), label);
  const shape = (type, label) => {
    const r = 7;
    const svg = s('svg', { class: `legend-shape node ${type} healthy`, viewBox: '-12 -12 24 24', width: 18, height: 18 }, nodeShape(type, r));
    return h('span', { class: 'legend-item', dataset: { legend: type } }, svg, label);
  };
  return h('div', { class: 'legend', id: 'graph-legend' },
    item('healthy', 'Healthy'), item('degraded', 'Degraded (any 5xx, or ≥10% 4xx)'), item('failure', 'Failure (≥10% 5xx, or ≥20% 4xx)'), item('idle', 'Idle'),
    shape('service', 'service'), shape('gateway', 'gateway'), shape('unknown', 'unknown caller'), shape('external', 'external'),
    h('span', { class: 'legend-item' }, h('span', { class: 'legend-dot' }), h('span', { class: 'legend-dot err' }), 'traffic (red: errors)'));
}
