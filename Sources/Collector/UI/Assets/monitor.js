// Monitor: RED metrics (rate, errors, duration) per service and per operation over time, Jaeger's
// Monitor tab computed from the stored spans (GET /api/meshtrace/monitor), scaled by
// sampling.rate as the service graph is. Deep link: /monitor?lookback=15m[&service=S][&spanKind=server]
import { h, state, fmtMs, fmtNumber, serviceColour, registerServices } from './dom.js';
import { getJSON } from './api.js';
import { sparkline, lineChart } from './charts.js';

const WINDOWS = [['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['6h', 'Last 6 hours'], ['24h', 'Last 24 hours']];
const KINDS = [['server', 'Server spans (requests served)'], ['client', 'Client spans (calls made)'], ['consumer', 'Consumer spans'], ['producer', 'Producer spans'], ['internal', 'Internal spans']];
const rate = (v) => `${fmtNumber(v, 2)}/s`;
const pct = (v) => `${fmtNumber(v * 100, 1)}%`;
const ms = (v) => (v == null ? '–' : fmtMs(v));

export async function renderMonitor(root, params, ctx) {
  const lookback = WINDOWS.some(([v]) => v === params.get('lookback')) ? params.get('lookback') : '15m';
  const kind = KINDS.some(([v]) => v === params.get('spanKind')) ? params.get('spanKind') : 'server';
  const service = params.get('service') || '';
  const winSel = h('select', { id: 'monitor-window', 'aria-label': 'Time window' }, WINDOWS.map(([v, l]) => h('option', { value: v }, l)));
  winSel.value = lookback;
  const kindSel = h('select', { id: 'monitor-kind', 'aria-label': 'Span kind' }, KINDS.map(([v, l]) => h('option', { value: v }, l)));
  kindSel.value = kind;
  const refresh = h('button', { type: 'button', class: 'btn', id: 'monitor-refresh' }, 'Refresh');
  const body = h('div', { id: 'monitor-body' }, state('loading', 'Computing RED metrics…'));
  root.replaceChildren(h('div', { class: 'monitor-page' },
    h('div', { class: 'monitor-tools' }, h('h1', null, 'Monitor'), h('label', { class: 'inline' }, 'Window ', winSel),
      h('label', { class: 'inline' }, 'Spans ', kindSel), refresh),
    h('p', { class: 'muted' }, 'Request rate, error rate and latency per service and operation, computed from the stored spans. ',
      'Each span counts 1 / sampling.rate, as on the service graph, so the rates estimate real traffic.'),
    body));
  ctx.focusTarget = winSel;
  const go = (changes) => {
    const u = new URLSearchParams({ lookback: winSel.value, spanKind: kindSel.value });
    const svc = changes && 'service' in changes ? changes.service : service;
    if (svc) u.set('service', svc);
    if (u.get('spanKind') === 'server') u.delete('spanKind');
    ctx.navigate('/monitor?' + u.toString(), true);
  };
  winSel.addEventListener('change', () => go());
  kindSel.addEventListener('change', () => go());
  refresh.addEventListener('click', () => go());
  ctx.onKey = (e) => { if (e.key === 'Escape' && service) { go({ service: '' }); return true; } return false; };

  const t0 = performance.now();
  let data;
  try {
    data = (await getJSON('/api/meshtrace/monitor', { lookback, spanKind: kind, service, points: 30 })).body;
  } catch (e) {
    body.replaceChildren(state('error', 'Could not compute the metrics', e.message));
    return;
  }
  registerServices(data.services.map((s) => s.name));
  if (!data.services.length) {
    body.replaceChildren(state('empty', `No ${kind} spans in the ${WINDOWS.find(([v]) => v === lookback)[1].toLowerCase()}`,
      kind === 'server' ? "Is the sidecar's --collector pointing here? Or pick a longer window, or client spans." : 'Try server spans or a longer window.'));
    return;
  }
  const end = data.endTs, start = end - data.lookbackMs;
  const services = table('monitor-services', 'Service', data.services, {
    key: 'service', selected: service,
    name: (s) => h('span', null, h('span', { class: 'swatch', style: { background: serviceColour(s.name) } }), s.name),
    onPick: (s) => go({ service: s.name === service ? '' : s.name }),
  });
  const parts = [h('h2', null, `Services (${data.services.length})`), services];
  const chosen = data.services.find((s) => s.name === service);
  if (service && !chosen) parts.push(state('empty', `${service} has no ${kind} spans in this window`));
  if (chosen) {
    const series = (f) => chosen.series.map((p) => ({ t: p.t, v: f(p) }));
    parts.push(h('h2', { id: 'monitor-title' }, `${chosen.name}`),
      h('div', { class: 'charts', id: 'monitor-charts' },
        lineChart({ title: 'Request rate (req/s)', series: [{ name: 'rps', values: series((p) => p.rps) }], yFormat: (v) => fmtNumber(v, 2), t0: start, t1: end, id: 'chart-rate' }),
        lineChart({ title: 'Error rate', series: [{ name: 'errors', cls: 'err', values: series((p) => (p.requests ? p.errorRate * 100 : null)) }], yFormat: (v) => `${fmtNumber(v, 1)}%`, t0: start, t1: end, id: 'chart-errors' }),
        lineChart({ title: 'Latency', series: [['p50', 'p50Ms'], ['p95', 'p95Ms'], ['p99', 'p99Ms']].map(([n, k]) => ({ name: n, cls: n, values: series((p) => p[k]) })),
          yFormat: fmtMs, t0: start, t1: end, id: 'chart-latency' })),
      h('h2', null, `Operations of ${chosen.name} (${(data.operations || []).length})`),
      h('p', { class: 'muted' }, 'Click an operation to see its traces.'),
      table('monitor-operations', 'Operation', data.operations || [], {
        key: 'operation',
        name: (o) => h('a', { href: `/search?service=${encodeURIComponent(chosen.name)}&operation=${encodeURIComponent(o.name)}&lookback=${lookback}`, 'data-link': '', class: 'op-link' }, o.name),
        onPick: (o) => ctx.navigate(`/search?service=${encodeURIComponent(chosen.name)}&operation=${encodeURIComponent(o.name)}&lookback=${lookback}`),
      }));
  }
  if (data.truncated) parts.unshift(h('p', { class: 'form-error' }, 'Too many spans in this window: only the newest were counted.'));
  body.replaceChildren(...parts);
  requestAnimationFrame(() => setTimeout(() => {
    window.__meshtraceMonitor = { services: data.services.length, totalMs: performance.now() - t0 };
    document.documentElement.dataset.monitorLoaded = service || '*';
  }, 0));
}

// A row per service or operation: the window's totals and a sparkline of each over time.
function table(id, label, rows, { key, name, onPick, selected }) {
  const head = ['Requests/s', 'Error %', 'p50', 'p95', 'p99'];
  return h('table', { class: 'monitor-table', id },
    h('thead', null, h('tr', null, h('th', null, label), h('th', { class: 'num' }, head[0]), h('th', null, ''), h('th', { class: 'num' }, head[1]), h('th', null, ''),
      h('th', { class: 'num' }, head[2]), h('th', { class: 'num' }, head[3]), h('th', null, ''), h('th', { class: 'num' }, head[4]))),
    h('tbody', null, rows.map((r) => {
      const tr = h('tr', { class: r.name === selected ? 'selected' : null, tabindex: 0,
        dataset: { [key]: r.name, rps: String(r.summary.rps), errorRate: String(r.summary.errorRate), requests: String(r.summary.requests) } },
      h('td', null, name(r)),
      h('td', { class: 'num rps' }, rate(r.summary.rps)),
      h('td', null, sparkline(r.series.map((p) => p.rps), { label: 'requests/s', format: rate })),
      h('td', { class: 'num errors' + (r.summary.errorRate ? ' err-count' : '') }, pct(r.summary.errorRate)),
      h('td', null, sparkline(r.series.map((p) => (p.requests ? p.errorRate : null)), { label: 'error rate', format: pct, cls: 'errors' })),
      h('td', { class: 'num' }, ms(r.summary.p50Ms)), h('td', { class: 'num' }, ms(r.summary.p95Ms)),
      h('td', null, sparkline(r.series.map((p) => p.p95Ms), { label: 'p95', format: ms, cls: 'p95' })),
      h('td', { class: 'num' }, ms(r.summary.p99Ms)));
      tr.addEventListener('click', (e) => { if (!e.target.closest('a')) onPick(r); });
      tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') onPick(r); });
      return tr;
    })));
}
