// The service graph's side panel: a node's or edge's traffic, sparklines of its rate, error % and
// p95 over the window (/api/meshtrace/graph/series), focus and per-operation links, and its traces.
import { h, state, fmtMs, fmtNumber } from './dom.js';
import { getJSON } from './api.js';
import { summarize, traceItem } from './search.js';
import { sparkline } from './charts.js';
import { HEALTH_LABEL } from './graphdraw.js';

let shownTraces = '';

export function emptySide(side, kindOp) {
  shownTraces = '';
  side.replaceChildren(h('h2', null, 'Details'), h('p', { class: 'muted' },
    kindOp ? 'Click an operation to see its calls, then focus on it to see only the paths through it (Jaeger\'s deep dependency graph).'
      : 'Click a node or an edge (or focus it with Tab and press Enter) to see its traffic, trends and traces.'),
  h('p', { class: 'muted' }, 'Rates and counts estimate real traffic: each span counts 1 / sampling.rate.'));
}

export function trafficTable(item) {
  const rows = [
    ['Requests (est.)', fmtNumber(item.requests, 1)], ['Rate', `${fmtNumber(item.rps, 3)} req/s`],
    ['Errors', `${fmtNumber(item.errorRate * 100, 1)}%`],
  ];
  if (item.errors5xx !== undefined) rows.push(['5xx', fmtNumber(item.errors5xx, 1)], ['4xx', fmtNumber(item.errors4xx, 1)], ['Other errors', fmtNumber(item.errorsOther, 1)]);
  rows.push(['Spans seen', String(item.spans)]);
  if (item.p95Ms !== undefined) rows.push(['p95 latency', fmtMs(item.p95Ms)]);
  if (item.protocol) rows.push(['Protocol', item.protocol]);
  return h('table', { class: 'kv', id: 'graph-traffic' }, h('tbody', null, rows.map(([k, v]) => h('tr', null, h('th', null, k), h('td', null, v)))));
}

// Three sparklines over the window, filled in when the series arrives.
function trends(query, lookback) {
  const box = h('div', { class: 'trends', id: 'graph-trends' }, h('p', { class: 'muted' }, 'Loading trends…'));
  getJSON('/api/meshtrace/graph/series', { lookback, points: 30, ...query }).then(({ body }) => {
    const pts = body.series;
    const row = (label, values, fmt, cls, last) => h('div', { class: 'trend', dataset: { trend: cls } },
      h('span', { class: 'trend-label' }, label), sparkline(values, { width: 150, height: 30, format: fmt, label, cls }),
      h('span', { class: 'trend-value' }, last));
    const sum = body.summary;
    box.replaceChildren(
      h('h3', null, `Over the window (${pts.length} × ${Math.round(body.stepMs / 1000)}s)`),
      row('Requests/s', pts.map((p) => p.rps), (v) => fmtNumber(v, 2), 'rps', `${fmtNumber(sum.rps, 2)}/s`),
      row('Errors', pts.map((p) => (p.requests ? p.errorRate * 100 : null)), (v) => `${fmtNumber(v, 1)}%`, 'errors', `${fmtNumber(sum.errorRate * 100, 1)}%`),
      row('p95', pts.map((p) => p.p95Ms), fmtMs, 'p95', sum.p95Ms == null ? '–' : fmtMs(sum.p95Ms)));
  }).catch((e) => box.replaceChildren(state('error', 'Could not load trends', e.message)));
  return box;
}

function traceList(ids) {
  const traces = h('div', { id: 'graph-traces' }, state('loading', 'Loading traces…'));
  const key = ids.join(',');
  shownTraces = key;
  if (!ids.length) { traces.replaceChildren(h('p', { class: 'muted' }, 'No traces kept.')); return traces; }
  getJSON('/api/traces', { traceID: ids }).then(({ body }) => {
    if (shownTraces !== key) return;
    const list = (body.data || []).map(summarize).sort((a, b) => b.start - a.start);
    traces.replaceChildren(h('ol', { class: 'trace-list compact', id: 'graph-trace-list' }, list.map(traceItem)));
  }).catch((e) => traces.replaceChildren(state('error', 'Could not load traces', e.message)));
  return traces;
}

// The services view: a node or an edge of /api/meshtrace/graph.
export function serviceSide(side, { data, selection, lookback, focus, onFocus }) {
  let item, title;
  if (selection.node) {
    item = data.nodes.find((n) => n.id === selection.node);
    title = item ? `${item.type === 'service' ? 'Service' : item.type[0].toUpperCase() + item.type.slice(1)} ${item.id}` : selection.node;
  } else {
    item = data.edges.find((e) => e.source === selection.from && e.target === selection.to);
    title = `${selection.from} → ${selection.to}`;
  }
  if (!item) {
    side.replaceChildren(h('h2', { id: 'graph-side-title' }, title), h('p', { class: 'muted' }, 'No traffic in this window.'));
    return;
  }
  const enc = encodeURIComponent;
  const actions = h('div', { class: 'side-actions' });
  if (selection.node) {
    const focusBtn = h('button', { type: 'button', class: 'btn', id: 'graph-focus-btn' }, focus === item.id ? 'Show the whole graph' : `Focus on ${item.id}`);
    focusBtn.addEventListener('click', () => onFocus(focus === item.id ? null : item.id));
    actions.append(focusBtn);
    if (item.type === 'service' || item.type === 'gateway') {
      actions.append(
        h('a', { href: `/graph?view=operations&lookback=${lookback}&service=${enc(item.id)}`, 'data-link': '', class: 'btn', id: 'graph-ops-link' }, 'Operation dependencies'),
        h('a', { href: `/monitor?lookback=${lookback}&service=${enc(item.id)}`, 'data-link': '', class: 'btn' }, 'Monitor'),
        h('a', { href: `/search?service=${enc(item.id)}&lookback=${lookback}`, 'data-link': '', class: 'btn' }, `Search all ${item.id} traces`));
    }
  } else {
    actions.append(h('a', { href: `/search?service=${enc(selection.from)}&lookback=${lookback}`, 'data-link': '', class: 'btn' }, `Search ${selection.from} traces`));
  }
  side.replaceChildren(
    h('h2', { id: 'graph-side-title' }, title),
    h('p', null, h('span', { class: `health-badge ${item.health}` }, HEALTH_LABEL[item.health] || item.health)),
    trafficTable(item),
    trends(selection.node ? { node: selection.node } : { from: selection.from, to: selection.to }, lookback),
    actions, h('h3', null, 'Recent traces'), traceList(item.traceIDs));
}

// The operations view: a node ({service, operation}) or an edge of /api/meshtrace/graph/operations.
export function operationSide(side, { graph, selection, lookback, focus, onFocus }) {
  const enc = encodeURIComponent;
  if (selection.node) {
    const n = graph.nodes.find((x) => x.id === selection.node);
    if (!n) { emptySide(side, true); return; }
    const focused = focus && focus.service === n.service && focus.operation === n.operation;
    const focusBtn = h('button', { type: 'button', class: 'btn', id: 'graph-focus-btn' }, focused ? 'Show all operations' : 'Focus on this operation');
    focusBtn.addEventListener('click', () => onFocus(focused ? null : { service: n.service, operation: n.operation }));
    side.replaceChildren(h('h2', { id: 'graph-side-title' }, n.operation), h('p', { class: 'details-sub' }, h('b', null, n.service)),
      h('p', null, h('span', { class: `health-badge ${n.health}` }, HEALTH_LABEL[n.health] || n.health)),
      trafficTable(n), h('div', { class: 'side-actions' }, focusBtn,
        h('a', { href: `/search?service=${enc(n.service)}&operation=${enc(n.operation)}&lookback=${lookback}`, 'data-link': '', class: 'btn', id: 'graph-op-traces' }, 'Its traces')));
    return;
  }
  const e = graph.edges.find((x) => x.source === selection.from && x.target === selection.to);
  const a = graph.nodes.find((x) => x.id === selection.from), b = graph.nodes.find((x) => x.id === selection.to);
  if (!e || !a || !b) { emptySide(side, true); return; }
  side.replaceChildren(h('h2', { id: 'graph-side-title' }, `${a.label} → ${b.label}`),
    h('p', { class: 'details-sub' }, `${a.service} → ${b.service}`), trafficTable(e));
}
