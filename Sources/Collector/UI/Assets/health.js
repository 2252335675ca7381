// Health: each service's request rate, error % and p95 (from the graph API: with tail sampling
// on, counted from every span before the decision), then the propagation doctor's findings
// (the same report as `meshtrace analyze`, from GET /api/meshtrace/analysis). Every value is
// rendered as text.
import { h, state } from './dom.js';
import { getJSON } from './api.js';

const WINDOWS = [['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['6h', 'Last 6 hours']];

export async function renderHealth(root, params, ctx) {
  const lookback = WINDOWS.some(([v]) => v === params.get('lookback')) ? params.get('lookback') : '15m';
  const service = params.get('service') || '';
  const winSel = h('select', { id: 'health-window', 'aria-label': 'Time window' }, WINDOWS.map(([v, l]) => h('option', { value: v }, l)));
  winSel.value = lookback;
  const refresh = h('button', { type: 'button', class: 'btn', id: 'health-refresh' }, 'Refresh');
  const summary = h('p', { class: 'muted', id: 'health-summary', 'aria-live': 'polite' }, 'Analysing…');
  const list = h('div', { id: 'health-findings' });
  const red = h('div', { id: 'health-red' });
  root.replaceChildren(h('div', { class: 'health-page' },
    h('div', { class: 'health-tools' }, h('h1', null, 'Health'), h('label', { class: 'inline' }, 'Window ', winSel), refresh),
    red,
    h('p', { class: 'muted' }, 'Where traces break and why: dropped context, orphan spans, partial propagation, clock skew, sampling flips and uninstrumented hops. Same as `meshtrace analyze`.'),
    summary, list));

  async function loadRED() {
    let graph;
    try {
      graph = (await getJSON('/api/meshtrace/graph', { lookback: winSel.value })).body;
    } catch (e) {
      red.replaceChildren(state('error', 'Could not load request rates', String(e && e.message || e)));
      return;
    }
    const nodes = (graph.nodes || []).filter((n) => n.type === 'service' || n.type === 'gateway');
    const since = graph.preSamplingFromMs ? new Date(graph.preSamplingFromMs).toLocaleTimeString() : '';
    const source = graph.source === 'pre-sampling'
      ? 'Counted from every span, before tail sampling decided which traces to keep.'
      : graph.source === 'mixed'
        ? `Counted from every span since ${since}, when tail sampling started; before that, estimated from stored spans.`
        : 'Estimated from stored spans, each weighted by its sampling rate.';
    const pct = (x) => `${(100 * x).toFixed(x > 0 && x < 0.001 ? 3 : 1)}%`;
    red.replaceChildren(
      h('h2', null, 'Services'),
      h('table', { class: 'red-table' },
        h('thead', null, h('tr', null, ['Service', 'Requests/s', 'Errors', 'p95', 'Health'].map((t) => h('th', null, t)))),
        h('tbody', null, nodes.map((n) => h('tr', { dataset: { service: n.id } },
          h('td', null, n.id), h('td', null, Number(n.rps).toFixed(2)), h('td', null, pct(n.errorRate)),
          h('td', null, `${Number(n.p95Ms).toFixed(1)} ms`), h('td', null, h('span', { class: `health-badge ${n.health}` }, n.health)))))),
      h('p', { class: 'muted', id: 'health-red-source' }, source));
  }

  async function load() {
    const next = new URLSearchParams({ lookback: winSel.value });
    if (service) next.set('service', service);
    history.replaceState(null, '', `/health?${next}`);  // not navigate(): that would re-render
    let body;
    try {
      body = (await getJSON('/api/meshtrace/analysis', { lookback: winSel.value, service })).body;
    } catch (e) {
      list.replaceChildren(state('error', 'Could not load the analysis', String(e && e.message || e)));
      return;
    }
    const findings = body.findings || [];
    summary.textContent = `Analysed ${body.traces} traces (${body.spans} spans, ${(body.services || []).length} services). `
      + (findings.length ? `${findings.length} problem${findings.length === 1 ? '' : 's'} found.` : 'No problems found.');
    if (!findings.length) {
      list.replaceChildren(state('empty', 'No problems found', body.traces ? 'Trace context is propagated end to end.' : 'No complete traces in this window yet.'));
      return;
    }
    list.replaceChildren(...findings.map((f) => {
      const ev = f.evidence || {};
      const details = Object.entries(ev.details || {}).sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('; ');
      return h('section', { class: `finding ${f.severity}`, dataset: { kind: f.kind, service: f.service } },
        h('h2', null, `${f.kind.replace(/-/g, ' ')} — ${f.service}`),
        h('p', null, f.summary),
        h('p', { class: 'muted' }, `Evidence: ${ev.count}${ev.outOf != null ? ` of ${ev.outOf}` : ''}${details ? `; ${details}` : ''}`),
        h('p', { class: 'traces' }, 'Traces: ', (ev.traceIDs || []).map((id) => h('a', { href: `/trace/${encodeURIComponent(id)}`, 'data-link': true }, id.slice(0, 16)))),
        h('p', { class: 'fix' }, `Fix: ${f.fix}`));
    }));
  }
  const both = () => Promise.all([loadRED(), load()]);
  winSel.addEventListener('change', both);
  refresh.addEventListener('click', both);
  await both();
  return null;
}
