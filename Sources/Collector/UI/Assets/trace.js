// Trace page: header, view tabs and the span details panel; each view is its own module.
// Deep link: /trace/{id}[?view=timeline|graph|flamegraph|table|stats|json][&span=<spanID>][&uiFind=text]
import { h, state, fmtDuration, fmtTime, registerServices } from './dom.js';
import { getJSON, convertTrace, criticalPath } from './api.js';
import { renderDetails, fact } from './spandetails.js';
import { mountTimeline } from './waterfall.js';
import { mountStats } from './tracestats.js';
import { mountTraceGraph } from './tracegraph.js';
import { mountFlamegraph } from './flamegraph.js';
import { mountSpanTable } from './spantable.js';
import { mountJSON } from './jsonview.js';

export const VIEWS = [['timeline', 'Timeline', mountTimeline], ['graph', 'Graph', mountTraceGraph], ['flamegraph', 'Flame graph', mountFlamegraph],
  ['table', 'Spans', mountSpanTable], ['stats', 'Statistics', mountStats], ['json', 'JSON', mountJSON]];

export async function renderTrace(root, params, ctx, traceID) {
  const t0 = performance.now();
  root.replaceChildren(state('loading', `Loading trace ${traceID}…`));
  let body, text;
  try {
    ({ body, text } = await getJSON(`/api/traces/${encodeURIComponent(traceID)}`));
  } catch (e) {
    root.replaceChildren(e.status === 404
      ? state('empty', `Trace ${traceID} was not found`, 'It may have aged out (retention), not been flushed by the sidecar yet, or the id may be mistyped. Search for it from the Search page.')
      : state('error', `Could not load trace ${traceID}`, e.message));
    return;
  }
  const tFetched = performance.now();
  const raw = body.data && body.data[0];
  if (!raw || !raw.spans || !raw.spans.length) {
    root.replaceChildren(state('empty', `Trace ${traceID} has no spans`));
    return;
  }
  const model = convertTrace(raw);
  registerServices(model.services);
  const cp = criticalPath(model);
  const tModel = performance.now();

  let selected = null;
  let current = null, currentName = null;
  let firstPaint = true;

  // --- header -----------------------------------------------------------------------------
  const rootName = model.root ? `${model.root.service}: ${model.root.name}` : traceID;
  const download = h('button', { type: 'button', class: 'btn', id: 'download-json', title: 'Download this trace as Jaeger JSON' }, 'Download JSON');
  download.addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    const a = h('a', { href: url, download: `trace-${model.id}.json` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  const typical = h('button', { type: 'button', class: 'btn', id: 'compare-typical',
    title: 'Compare with the median-duration trace of the same root operation in the last hour' }, 'Compare with typical');
  const typicalNote = h('span', { class: 'muted', id: 'compare-typical-note', 'aria-live': 'polite' });
  typical.addEventListener('click', async () => {
    typicalNote.textContent = 'Finding a typical trace…';
    try {
      const t = (await getJSON(`/api/meshtrace/compare/typical/${encodeURIComponent(model.id)}`, { lookback: '1h' })).body;
      ctx.navigate(`/trace/${model.id}...${t.traceID}`);
    } catch (e) {
      typicalNote.textContent = e.status === 404 ? e.message.replace(/^404: /, '') : `Could not find one: ${e.message}`;
    }
  });
  const tabs = VIEWS.map(([name, label]) => {
    const b = h('button', { type: 'button', class: 'tab', id: `tab-${name}`, role: 'tab', dataset: { view: name } }, label);
    b.addEventListener('click', () => showView(name));
    return b;
  });
  const tools = h('div', { class: 'view-tools', id: 'view-tools' });
  const head = h('div', { class: 'trace-head' },
    h('div', { class: 'trace-title-row' },
      h('h1', { id: 'trace-title' }, rootName),
      h('code', { class: 'tid', id: 'trace-id' }, model.id)),
    h('dl', { class: 'trace-facts' },
      fact('Start', fmtTime(model.start)), fact('Duration', fmtDuration(model.duration)),
      fact('Services', String(model.services.length)), fact('Depth', String(model.maxDepth + 1)),
      fact('Spans', String(model.spans.length), 'fact-spans'),
      fact('Errors', String(model.errors), model.errors ? 'fact-errors has-errors' : 'fact-errors')),
    h('div', { class: 'trace-tools' },
      h('div', { class: 'tabs', role: 'tablist' }, tabs), tools, h('span', { class: 'spacer' }), typicalNote, typical, download));

  const host = h('div', { class: 'view-host', id: 'view-host' });
  const details = h('aside', { class: 'details', id: 'span-details', hidden: true });
  const body2 = h('div', { class: 'trace-body' }, host, details);
  root.replaceChildren(h('div', { class: 'trace-page' }, head, body2));

  function setParam(key, value) {
    const u = new URL(location.href);
    if (value) u.searchParams.set(key, value); else u.searchParams.delete(key);
    history.replaceState(null, '', u.pathname + u.search);
  }

  function select(sp) {
    selected = sp || null;
    renderDetails(details, selected, model, cp, select, () => { select(null); if (current && current.focus) current.focus(); });
    body2.classList.toggle('with-details', !!selected);
    setParam('span', selected ? selected.id : null);
    if (current && current.onSelect) current.onSelect(selected);
  }

  const env = { model, raw, cp, params, tools, select, selected: () => selected, setParam, navigate: ctx.navigate };

  function showView(name) {
    const found = VIEWS.find(([n]) => n === name) || VIEWS[0];
    if (current && current.destroy) current.destroy();
    tools.replaceChildren();
    currentName = found[0];
    for (const b of tabs) b.setAttribute('aria-selected', String(b.dataset.view === currentName));
    setParam('view', currentName === 'timeline' ? null : currentName);
    const tMount = performance.now();
    current = found[2](host, env) || {};
    ctx.focusTarget = current.focusTarget || null;
    const mountMs = performance.now() - tMount;
    const shown = currentName;
    // Timing for docs/performance.md: the view's first frame, from navigation start.
    requestAnimationFrame(() => setTimeout(() => {
      if (currentName !== shown) return;
      window.__meshtraceView = { view: shown, spans: model.spans.length, mountMs, sinceNavigationMs: performance.now() };
      if (firstPaint) {
        firstPaint = false;
        window.__meshtraceRender = { spans: model.spans.length, fetchMs: tFetched - t0, modelMs: tModel - tFetched,
          domMs: mountMs, totalMs: performance.now() - t0, sinceNavigationMs: performance.now(), rows: current.rows ? current.rows() : null };
        document.documentElement.dataset.traceRendered = model.id;
      }
      document.documentElement.dataset.viewRendered = `${model.id}:${shown}`;
    }, 0));
  }

  ctx.onKey = (e) => {
    if (e.key === 'Escape' && selected) { select(null); return true; }
    return current && current.onKey ? current.onKey(e) : false;
  };

  const want = params.get('span') && model.byID.get(params.get('span'));
  if (want) { selected = want; }
  showView(params.get('view') || 'timeline');
  if (want) select(want);
  return () => { if (current && current.destroy) current.destroy(); };
}
