// Health: the propagation doctor's findings (the same report as `meshtrace analyze`), from
// GET /api/meshtrace/analysis. Every value is rendered as text.
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
  root.replaceChildren(h('div', { class: 'health-page' },
    h('div', { class: 'health-tools' }, h('h1', null, 'Health'), h('label', { class: 'inline' }, 'Window ', winSel), refresh),
    h('p', { class: 'muted' }, 'Where traces break and why: dropped context, orphan spans, partial propagation, clock skew, sampling flips and uninstrumented hops. Same as `meshtrace analyze`.'),
    summary, list));

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
  winSel.addEventListener('change', load);
  refresh.addEventListener('click', load);
  await load();
  return null;
}
