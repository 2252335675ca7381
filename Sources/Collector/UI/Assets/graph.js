// Service graph (what Kiali draws), from /api/meshtrace/graph. Deep link: /graph?lookback=5m[&node=x | &from=a&to=b]
import { h, s, state, fmtMs, fmtNumber, serviceColour, registerServices } from './dom.js';
import { getJSON } from './api.js';
import { summarize, traceItem } from './search.js';

const WINDOWS = [['1m', 'Last minute'], ['5m', 'Last 5 minutes'], ['1h', 'Last hour']];
const REFRESH_MS = 10000;
const HEALTH_LABEL = { healthy: 'Healthy', degraded: 'Degraded', failure: 'Failure', idle: 'Idle' };

export async function renderGraph(root, params, ctx) {
  let lookback = WINDOWS.some(([v]) => v === params.get('lookback')) ? params.get('lookback') : '5m';
  let selection = params.get('node') ? { node: params.get('node') }
    : params.get('from') && params.get('to') ? { from: params.get('from'), to: params.get('to') } : null;
  let data = null;
  let timer = 0;
  let stopped = false;
  let shownTraces = '';

  const winSel = h('select', { id: 'graph-window', 'aria-label': 'Time window' }, WINDOWS.map(([v, l]) => h('option', { value: v }, l)));
  winSel.value = lookback;
  const auto = h('input', { type: 'checkbox', id: 'graph-auto', checked: true });
  const refreshBtn = h('button', { type: 'button', class: 'btn', id: 'graph-refresh' }, 'Refresh');
  const status = h('span', { class: 'muted', id: 'graph-status', 'aria-live': 'polite' });
  const canvas = h('div', { class: 'graph-canvas', id: 'graph-canvas' });
  const side = h('aside', { class: 'graph-side', id: 'graph-side' });
  root.replaceChildren(h('div', { class: 'graph-page' },
    h('div', { class: 'graph-tools' },
      h('h1', null, 'Service graph'),
      h('label', { class: 'inline' }, 'Window ', winSel),
      h('label', { class: 'inline', title: `Reload every ${REFRESH_MS / 1000}s` }, auto, ` Auto-refresh (${REFRESH_MS / 1000}s)`),
      refreshBtn, status),
    h('div', { class: 'graph-body' }, h('div', { class: 'graph-main' }, canvas, legend()), side)));
  ctx.focusTarget = winSel;

  function updateURL() {
    const u = new URLSearchParams({ lookback });
    if (selection && selection.node) u.set('node', selection.node);
    if (selection && selection.from) { u.set('from', selection.from); u.set('to', selection.to); }
    history.replaceState(null, '', '/graph?' + u.toString());
  }

  async function load() {
    clearTimeout(timer);
    status.textContent = 'Loading…';
    try {
      data = (await getJSON('/api/meshtrace/graph', { lookback })).body;
      if (stopped) return;
      registerServices(data.nodes.map((n) => n.id));
      draw();
      status.textContent = `Updated ${new Date().toLocaleTimeString()} · ${data.spanCount} spans in window${data.truncated ? ' (truncated: newest spans only)' : ''}`;
      document.documentElement.dataset.graphLoaded = String(Date.now());
    } catch (e) {
      if (stopped) return;
      canvas.replaceChildren(state('error', 'Could not load the service graph', e.message));
      status.textContent = '';
    }
    if (auto.checked && !stopped) timer = setTimeout(load, REFRESH_MS);
  }

  function draw() {
    const win = WINDOWS.find(([v]) => v === lookback)[1].toLowerCase();
    if (!data.nodes.length) {
      canvas.replaceChildren(state('empty', `No requests in the ${win}`,
        "Is the sidecar's --collector pointing here? Or pick a longer window."));
      renderSide();
      return;
    }
    canvas.replaceChildren(drawGraph(data, selection, (sel) => { selection = sel; updateURL(); draw(); }));
    renderSide();
  }

  function renderSide() {
    if (!selection || !data) {
      side.replaceChildren(h('h2', null, 'Details'), h('p', { class: 'muted' },
        'Click a node or an edge (or focus it with Tab and press Enter) to see its traffic and traces.'),
      h('p', { class: 'muted' }, 'Rates and counts estimate real traffic: each span counts 1 / sampling.rate.'));
      shownTraces = '';
      return;
    }
    let item, title, traffic;
    if (selection.node) {
      item = data.nodes.find((n) => n.id === selection.node);
      title = item ? `${item.type === 'service' ? 'Service' : item.type[0].toUpperCase() + item.type.slice(1)} ${item.id}` : selection.node;
    } else {
      item = data.edges.find((e) => e.source === selection.from && e.target === selection.to);
      title = `${selection.from} → ${selection.to}`;
    }
    if (!item) {
      side.replaceChildren(h('h2', null, title), h('p', { class: 'muted' }, 'No traffic in this window.'));
      return;
    }
    traffic = [
      ['Requests (est.)', fmtNumber(item.requests, 1)], ['Rate', `${fmtNumber(item.rps, 3)} req/s`],
      ['Errors', `${fmtNumber(item.errorRate * 100, 1)}%`], ['5xx', fmtNumber(item.errors5xx, 1)], ['4xx', fmtNumber(item.errors4xx, 1)],
      ['Other errors', fmtNumber(item.errorsOther, 1)], ['Spans seen', String(item.spans)],
    ];
    if (item.p95Ms !== undefined) traffic.push(['p95 latency', fmtMs(item.p95Ms)], ['Protocol', item.protocol]);
    const searchLink = selection.node && (item.type === 'service' || item.type === 'gateway')
      ? h('a', { href: `/search?service=${encodeURIComponent(item.id)}&lookback=${lookback}`, 'data-link': '', class: 'btn' }, `Search all ${item.id} traces`)
      : selection.from ? h('a', { href: `/search?service=${encodeURIComponent(selection.from)}&lookback=${lookback}`, 'data-link': '', class: 'btn' }, `Search ${selection.from} traces`) : null;
    const traces = h('div', { id: 'graph-traces' }, state('loading', 'Loading traces…'));
    side.replaceChildren(
      h('h2', { id: 'graph-side-title' }, title),
      h('p', null, h('span', { class: `health-badge ${item.health}` }, HEALTH_LABEL[item.health] || item.health)),
      h('table', { class: 'kv' }, h('tbody', null, traffic.map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, v))))),
      searchLink, h('h3', null, 'Recent traces'), traces);
    const key = item.traceIDs.join(',');
    shownTraces = key;
    if (!item.traceIDs.length) { traces.replaceChildren(h('p', { class: 'muted' }, 'No traces kept.')); return; }
    getJSON('/api/traces', { traceID: item.traceIDs }).then(({ body }) => {
      if (shownTraces !== key) return;
      const list = (body.data || []).map(summarize).sort((a, b) => b.start - a.start);
      traces.replaceChildren(h('ol', { class: 'trace-list compact', id: 'graph-trace-list' }, list.map(traceItem)));
    }).catch((e) => traces.replaceChildren(state('error', 'Could not load traces', e.message)));
  }

  winSel.addEventListener('change', () => { lookback = winSel.value; updateURL(); load(); });
  auto.addEventListener('change', () => { if (auto.checked) load(); else clearTimeout(timer); });
  refreshBtn.addEventListener('click', load);
  ctx.onKey = (e) => {
    if (e.key === 'Escape' && selection) { selection = null; updateURL(); draw(); return true; }
    if (e.key === 'r') { load(); return true; }
    return false;
  };
  await load();
  return () => { stopped = true; clearTimeout(timer); };
}

function legend() {
  const item = (cls, label) => h('span', { class: 'legend-item' }, h('span', { class: `legend-line ${cls}` }), label);
  return h('div', { class: 'legend', id: 'graph-legend' },
    item('healthy', 'Healthy'), item('degraded', 'Degraded (any 5xx, or ≥10% 4xx)'), item('failure', 'Failure (≥10% 5xx, or ≥20% 4xx)'), item('idle', 'Idle'),
    h('span', { class: 'legend-item' }, '● service  ◆ gateway  ◌ unknown caller  ▢ external'));
}

// Layered left-to-right layout: rank = longest path from the callers, then order each column by
// the average position of its callers to keep crossings down.
function layout(nodes, edges) {
  const rank = new Map(nodes.map((n) => [n.id, 0]));
  const N = nodes.length;
  for (let it = 0; it < N; it++) {
    let changed = false;
    for (const e of edges) {
      if (e.source === e.target) continue;
      const r = rank.get(e.source) + 1;
      if (r > rank.get(e.target) && r < N) { rank.set(e.target, r); changed = true; }
    }
    if (!changed) break;
  }
  const columns = [];
  for (const n of nodes) (columns[rank.get(n.id)] ||= []).push(n);
  const pos = new Map();
  columns.forEach((col, c) => {
    if (!col) return;
    const bary = (n) => {
      const ins = edges.filter((e) => e.target === n.id && pos.has(e.source)).map((e) => pos.get(e.source).i);
      return ins.length ? ins.reduce((a, b) => a + b, 0) / ins.length : Infinity;
    };
    col.sort((a, b) => bary(a) - bary(b) || (a.id < b.id ? -1 : 1));
    col.forEach((n, i) => pos.set(n.id, { c, i, n: col.length }));
  });
  return { pos, columns: columns.length, rows: Math.max(...columns.filter(Boolean).map((c) => c.length)) };
}

function drawGraph(data, selection, onSelect) {
  const { pos, columns, rows } = layout(data.nodes, data.edges);
  const COL = 260, ROW = 120, PAD_X = 90, PAD_Y = 70, R = 24;
  const W = PAD_X * 2 + (columns - 1) * COL, H = PAD_Y * 2 + (rows - 1) * ROW + 20;
  const at = (id) => {
    const p = pos.get(id);
    return { x: PAD_X + p.c * COL, y: PAD_Y + ((rows - 1) * ROW) / 2 + (p.i - (p.n - 1) / 2) * ROW };
  };
  const svg = s('svg', { class: 'graph', id: 'graph-svg', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': 'Service graph' });
  const defs = s('defs');
  for (const hl of ['healthy', 'degraded', 'failure', 'idle']) {
    defs.append(s('marker', { id: `arrow-${hl}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0,0 L10,5 L0,10 z', class: `arrowhead ${hl}` })));
  }
  svg.append(defs);
  const edgeLayer = s('g', { class: 'edges' }), labelLayer = s('g', { class: 'labels' }), nodeLayer = s('g', { class: 'nodes' });
  svg.append(edgeLayer, nodeLayer, labelLayer);
  const activate = (el, sel, label) => {
    el.setAttribute('tabindex', '0');
    el.setAttribute('role', 'button');
    el.setAttribute('aria-label', label);
    el.addEventListener('click', (ev) => { ev.stopPropagation(); onSelect(sel); });
    el.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); onSelect(sel); } });
  };

  for (const e of data.edges) {
    const a = at(e.source), b = at(e.target);
    let d, mx, my;
    if (e.source === e.target) {
      d = `M${a.x - 10},${a.y - R + 2} C${a.x - 50},${a.y - R - 60} ${a.x + 50},${a.y - R - 60} ${a.x + 10},${a.y - R + 2}`;
      mx = a.x; my = a.y - R - 48;
    } else if (b.x > a.x) {
      const x1 = a.x + R, x2 = b.x - R - 2, dx = (x2 - x1) / 2;
      d = `M${x1},${a.y} C${x1 + dx},${a.y} ${x2 - dx},${b.y} ${x2},${b.y}`;
      mx = (x1 + x2) / 2; my = (a.y + b.y) / 2;
    } else {
      const x1 = a.x, y1 = a.y - R, x2 = b.x, y2 = b.y - R - 2, lift = 70 + Math.abs(x1 - x2) * 0.15;
      d = `M${x1},${y1} C${x1},${y1 - lift} ${x2},${y2 - lift} ${x2},${y2}`;
      mx = (x1 + x2) / 2; my = (y1 + y2) / 2 - lift * 0.75;
    }
    const selected = selection && selection.from === e.source && selection.to === e.target;
    const width = 1.6 + Math.min(4, Math.log10(1 + e.rps) * 2.5);
    const g = s('g', { class: `edge ${e.health}${selected ? ' selected' : ''}`,
      dataset: { source: e.source, target: e.target, health: e.health, rps: String(e.rps), requests: String(e.requests), errorRate: String(e.errorRate), p95: String(e.p95Ms) } },
    s('path', { d, class: 'hit' }),
    s('path', { d, class: 'line', 'marker-end': `url(#arrow-${e.health})`, style: { strokeWidth: `${width}px` } }),
    s('title', null, `${e.source} → ${e.target}\n${fmtNumber(e.rps, 3)} req/s, ${fmtNumber(e.errorRate * 100, 1)}% errors, p95 ${fmtMs(e.p95Ms)}`));
    activate(g, { from: e.source, to: e.target }, `Edge ${e.source} to ${e.target}`);
    edgeLayer.append(g);
    const label = `${fmtNumber(e.rps, 2)} rps · ${fmtNumber(e.errorRate * 100, 1)}% · p95 ${fmtMs(e.p95Ms)}`;
    const wText = label.length * 6.2 + 10;
    labelLayer.append(s('g', { class: `edge-label ${e.health}`, transform: `translate(${mx},${my})` },
      s('rect', { x: -wText / 2, y: -9, width: wText, height: 18, rx: 4 }),
      s('text', { 'text-anchor': 'middle', y: 4 }, label)));
  }

  for (const n of data.nodes) {
    const { x, y } = at(n.id);
    const selected = selection && selection.node === n.id;
    const g = s('g', { class: `node ${n.type} ${n.health}${selected ? ' selected' : ''}`, transform: `translate(${x},${y})`,
      dataset: { node: n.id, type: n.type, health: n.health, rps: String(n.rps) } });
    const fill = n.type === 'service' || n.type === 'gateway' ? serviceColour(n.id) : null;
    let shape;
    if (n.type === 'gateway') shape = s('polygon', { points: `0,${-R - 4} ${R + 4},0 0,${R + 4} ${-R - 4},0`, class: 'shape' });
    else if (n.type === 'external') shape = s('rect', { x: -R, y: -R, width: 2 * R, height: 2 * R, rx: 8, class: 'shape' });
    else shape = s('circle', { r: R, class: 'shape' });
    g.append(s('circle', { r: R + 10, class: 'halo' }), shape);
    if (fill) g.append(s('circle', { r: 8, class: 'svc-dot', style: { fill } }));
    if (n.type === 'unknown') g.append(s('text', { class: 'glyph', 'text-anchor': 'middle', y: 6 }, '?'));
    if (n.type === 'external') g.append(s('text', { class: 'glyph', 'text-anchor': 'middle', y: 6 }, '↗'));
    g.append(s('text', { class: 'node-name', 'text-anchor': 'middle', y: R + 18 }, n.id),
      s('text', { class: 'node-rate', 'text-anchor': 'middle', y: R + 33 }, n.requests ? `${fmtNumber(n.rps, 2)} rps${n.errorRate ? ` · ${fmtNumber(n.errorRate * 100, 1)}% err` : ''}` : ''),
      s('title', null, `${n.type} ${n.id}: ${HEALTH_LABEL[n.health]}`));
    activate(g, { node: n.id }, `${n.type} ${n.id}`);
    nodeLayer.append(g);
  }
  svg.addEventListener('click', () => onSelect(null));
  return svg;
}
