// Search: Jaeger's form and URL (/search?service=&operation=&tags=&lookback=&minDuration=...).
import { h, s, state, fmtDuration, fmtTime, fmtAgo, serviceColour, registerServices } from './dom.js';
import { getJSON, convertTrace } from './api.js';
import { timeTicks, niceTicks } from './ticks.js';

const LOOKBACKS = [['5m', 'Last 5 minutes'], ['15m', 'Last 15 minutes'], ['1h', 'Last hour'], ['6h', 'Last 6 hours'],
  ['24h', 'Last 24 hours'], ['2d', 'Last 2 days'], ['custom', 'Custom range']];
const SORTS = [['recent', 'Most recent'], ['longest', 'Longest first'], ['shortest', 'Shortest first'],
  ['most', 'Most spans'], ['least', 'Fewest spans']];
const UNIT = { s: 1, m: 60, h: 3600, d: 86400 };

export function lookbackSeconds(lb) {
  const m = /^(\d+)([smhd])$/.exec(lb || '');
  return m ? +m[1] * UNIT[m[2]] : 3600;
}

export function lookbackLabel(lb) {
  const found = LOOKBACKS.find(([v]) => v === lb);
  return found ? found[1].replace(/^Last /, 'the last ') : `the last ${lb}`;
}

// logfmt-ish "k=v k2="v 2"" <-> {k: v}. Jaeger puts the JSON object in the URL as `tags`.
export function parseTags(text) {
  const out = {};
  const re = /\s*([^=\s]+)=("((?:[^"\\]|\\.)*)"|\S*)/g;
  let m, rest = text.trim(), consumed = 0;
  while ((m = re.exec(text)) !== null) {
    out[m[1]] = m[3] !== undefined ? m[3].replace(/\\(.)/g, '$1') : m[2];
    consumed = re.lastIndex;
  }
  if (rest && text.slice(consumed).trim()) throw new Error(`tags must look like key=value key2="value 2"; cannot read "${text.slice(consumed).trim()}"`);
  return out;
}

function formatTags(obj) {
  return Object.entries(obj).map(([k, v]) => (/[\s"]/.test(v) || v === '' ? `${k}="${v.replace(/(["\\])/g, '\\$1')}"` : `${k}=${v}`)).join(' ');
}

function toLocalInput(us) {
  const d = new Date(us / 1000);
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}

export async function renderSearch(root, params, ctx) {
  const form = h('form', { class: 'search-form', id: 'search-form', autocomplete: 'off' });
  const results = h('section', { class: 'results', id: 'results', 'aria-live': 'polite' });
  root.replaceChildren(h('div', { class: 'search-page' }, h('aside', { class: 'panel' }, h('h2', null, 'Search'), form), results));

  let services = [];
  try {
    services = (await getJSON('/api/services')).body.data || [];
  } catch (e) {
    results.replaceChildren(state('error', 'Could not load services', e.message));
    return;
  }
  registerServices(services);

  const serviceSel = h('select', { name: 'service', id: 'f-service', required: true },
    services.map((n) => h('option', { value: n }, n)));
  const opSel = h('select', { name: 'operation', id: 'f-operation' }, h('option', { value: 'all' }, 'all'));
  const tagsIn = h('input', { name: 'tags', id: 'f-tags', placeholder: 'http.status_code=500 error=true', spellcheck: 'false' });
  const lbSel = h('select', { name: 'lookback', id: 'f-lookback' }, LOOKBACKS.map(([v, l]) => h('option', { value: v }, l)));
  const startIn = h('input', { type: 'datetime-local', name: 'start', id: 'f-start' });
  const endIn = h('input', { type: 'datetime-local', name: 'end', id: 'f-end' });
  const custom = h('div', { class: 'custom-range' }, h('label', null, 'From', startIn), h('label', null, 'To', endIn));
  const minIn = h('input', { name: 'minDuration', id: 'f-min', placeholder: 'e.g. 100ms' });
  const maxIn = h('input', { name: 'maxDuration', id: 'f-max', placeholder: 'e.g. 1.5s' });
  const limitIn = h('input', { name: 'limit', id: 'f-limit', type: 'number', min: 1, max: 1500, value: 20 });
  const formError = h('p', { class: 'form-error', role: 'alert' });
  form.append(
    h('label', null, 'Service', serviceSel),
    h('label', null, 'Operation', opSel),
    h('label', null, 'Tags', tagsIn, h('small', null, 'key=value, several separated by spaces')),
    h('label', null, 'Lookback', lbSel), custom,
    h('div', { class: 'row2' }, h('label', null, 'Min duration', minIn), h('label', null, 'Max duration', maxIn)),
    h('label', null, 'Limit results', limitIn),
    formError,
    h('button', { type: 'submit', class: 'btn primary', id: 'find-traces' }, 'Find traces'));

  if (!services.length) {
    serviceSel.disabled = true;
    results.replaceChildren(state('empty', 'No services have reported spans yet',
      `Is the sidecar's --collector pointing here? Send spans to this collector's Zipkin port (POST /api/v2/spans, default 9411) or OTLP/HTTP port (POST /v1/traces, default 4318).`));
    return;
  }

  async function loadOperations(service, selected) {
    opSel.replaceChildren(h('option', { value: 'all' }, 'all'));
    try {
      const ops = (await getJSON(`/api/services/${encodeURIComponent(service)}/operations`)).body.data || [];
      for (const op of ops) opSel.append(h('option', { value: op }, op));
    } catch { /* the form still works with "all" */ }
    opSel.value = selected && [...opSel.options].some((o) => o.value === selected) ? selected : 'all';
  }

  // Fill the form from the URL (Jaeger's parameter names).
  const svc = params.get('service');
  serviceSel.value = svc && services.includes(svc) ? svc : services[0];
  await loadOperations(serviceSel.value, params.get('operation'));
  try {
    const t = params.get('tags');
    if (t) tagsIn.value = formatTags(JSON.parse(t));
  } catch { tagsIn.value = ''; }
  const lb = params.get('start') && params.get('end') ? 'custom' : params.get('lookback') || '1h';
  lbSel.value = LOOKBACKS.some(([v]) => v === lb) ? lb : '1h';
  const nowUs = Date.now() * 1000;
  startIn.value = toLocalInput(+params.get('start') || nowUs - 3600e6);
  endIn.value = toLocalInput(+params.get('end') || nowUs);
  custom.hidden = lbSel.value !== 'custom';
  minIn.value = params.get('minDuration') || '';
  maxIn.value = params.get('maxDuration') || '';
  limitIn.value = params.get('limit') || '20';

  serviceSel.addEventListener('change', () => loadOperations(serviceSel.value));
  lbSel.addEventListener('change', () => { custom.hidden = lbSel.value !== 'custom'; });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    formError.textContent = '';
    const q = new URLSearchParams();
    q.set('service', serviceSel.value);
    if (opSel.value && opSel.value !== 'all') q.set('operation', opSel.value);
    try {
      const tags = parseTags(tagsIn.value);
      if (Object.keys(tags).length) q.set('tags', JSON.stringify(tags));
    } catch (e) { formError.textContent = e.message; return; }
    if (lbSel.value === 'custom') {
      const st = new Date(startIn.value).getTime(), en = new Date(endIn.value).getTime();
      if (!isFinite(st) || !isFinite(en) || st > en) { formError.textContent = 'Pick a start before the end.'; return; }
      q.set('start', String(st * 1000)); q.set('end', String(en * 1000));
    } else q.set('lookback', lbSel.value);
    if (minIn.value.trim()) q.set('minDuration', minIn.value.trim());
    if (maxIn.value.trim()) q.set('maxDuration', maxIn.value.trim());
    q.set('limit', limitIn.value || '20');
    const sort = params.get('sort');
    if (sort) q.set('sort', sort);
    ctx.navigate('/search?' + q.toString());
  });

  ctx.focusTarget = serviceSel;
  if (params.get('service')) await runSearch(results, params, ctx);
  else results.replaceChildren(state('empty', 'Pick a service and press “Find traces”', 'Or press / to jump to the form.'));
}

async function runSearch(results, params, ctx) {
  results.replaceChildren(state('loading', 'Searching…'));
  const q = {};
  for (const k of ['service', 'operation', 'tags', 'minDuration', 'maxDuration', 'limit']) q[k] = params.get(k);
  let label;
  if (params.get('start') && params.get('end')) {
    q.start = params.get('start'); q.end = params.get('end');
    label = `between ${fmtTime(+q.start)} and ${fmtTime(+q.end)}`;
  } else {
    const lb = params.get('lookback') || '1h';
    const now = Date.now() * 1000;
    q.end = String(now); q.start = String(now - lookbackSeconds(lb) * 1e6);
    label = `in ${lookbackLabel(lb)}`;
  }
  let traces;
  try {
    traces = ((await getJSON('/api/traces', q)).body.data || []).map(summarize);
  } catch (e) {
    results.replaceChildren(state('error', 'Search failed', e.message));
    return;
  }
  if (!traces.length) {
    const filters = [];
    if (params.get('operation')) filters.push('operation');
    if (params.get('tags')) filters.push('tags');
    if (params.get('minDuration') || params.get('maxDuration')) filters.push('duration');
    results.replaceChildren(state('empty', `No traces for ${params.get('service')} ${label}`,
      filters.length ? `Try loosening the ${filters.join(', ')} filter or a longer lookback.`
        : "Is the sidecar's --collector pointing here? Or try a longer lookback."));
    return;
  }
  const sortSel = h('select', { id: 'sort', 'aria-label': 'Sort results' }, SORTS.map(([v, l]) => h('option', { value: v }, l)));
  sortSel.value = params.get('sort') || 'recent';
  const list = h('ol', { class: 'trace-list', id: 'trace-list' });
  const plot = h('div', { class: 'scatter-wrap' });
  // Compare: tick two results (Jaeger's flow), then open /trace/A...B.
  const picked = [];
  const compareBtn = h('button', { type: 'button', class: 'btn', id: 'compare-btn', disabled: true }, 'Compare');
  const compareNote = h('span', { class: 'muted', id: 'compare-note' }, 'Tick two traces to compare them.');
  compareBtn.addEventListener('click', () => { if (picked.length === 2) ctx.navigate(`/trace/${picked[0]}...${picked[1]}`); });
  const onPick = (id, on) => {
    const i = picked.indexOf(id);
    if (on && i < 0) picked.push(id);
    if (!on && i >= 0) picked.splice(i, 1);
    // A third tick replaces the oldest: at most two stay ticked.
    if (picked.length > 2) picked.shift();
    list.querySelectorAll('input.pick').forEach((box) => { box.checked = picked.includes(box.value); });
    compareBtn.disabled = picked.length !== 2;
    compareNote.textContent = picked.length === 2 ? `A: ${picked[0].slice(0, 8)} · B: ${picked[1].slice(0, 8)}` : 'Tick two traces to compare them.';
  };
  const draw = () => {
    const sorted = sortTraces(traces, sortSel.value);
    list.replaceChildren(...sorted.map((t) => traceItem(t, { onPick, picked })));
    plot.replaceChildren(scatter(traces, ctx), scatterLegend(traces));
  };
  sortSel.addEventListener('change', () => {
    const u = new URL(location.href);
    u.searchParams.set('sort', sortSel.value);
    history.replaceState(null, '', u.pathname + u.search);
    draw();
  });
  results.replaceChildren(
    h('div', { class: 'results-head' }, h('h2', null, `${traces.length} trace${traces.length === 1 ? '' : 's'} ${label}`),
      h('label', { class: 'inline' }, 'Sort ', sortSel)),
    plot, h('div', { class: 'compare-bar' }, compareBtn, compareNote), list);
  draw();
}

export function summarize(raw) {
  const m = convertTrace(raw);
  const counts = new Map();
  for (const sp of m.spans) counts.set(sp.service, (counts.get(sp.service) || 0) + 1);
  return { id: m.id, start: m.start, duration: m.duration, spans: m.spans.length, errors: m.errors,
    rootService: m.root ? m.root.service : '?', rootName: m.root ? m.root.name : '(no root span)', services: counts };
}

function sortTraces(traces, how) {
  const t = traces.slice();
  const cmp = { recent: (a, b) => b.start - a.start, longest: (a, b) => b.duration - a.duration,
    shortest: (a, b) => a.duration - b.duration, most: (a, b) => b.spans - a.spans, least: (a, b) => a.spans - b.spans }[how];
  return t.sort(cmp || ((a, b) => b.start - a.start));
}

// opts.onPick(id, checked): a tick box to choose the trace for comparison.
export function traceItem(t, opts = {}) {
  let pick = null;
  if (opts.onPick) {
    pick = h('input', { type: 'checkbox', class: 'pick', value: t.id, checked: opts.picked.includes(t.id), 'aria-label': `Compare trace ${t.id}` });
    pick.addEventListener('change', () => opts.onPick(t.id, pick.checked));
  }
  return h('li', { class: 'trace-item' + (t.errors ? ' has-error' : ''), dataset: { traceId: t.id } },
    pick, h('a', { href: `/trace/${t.id}`, 'data-link': '', class: 'trace-link' },
      h('span', { class: 'trace-title' }, h('b', null, t.rootService), ': ', t.rootName),
      h('span', { class: 'trace-dur' }, fmtDuration(t.duration))),
    h('div', { class: 'trace-meta' },
      h('span', null, `${t.spans} span${t.spans === 1 ? '' : 's'}`),
      t.errors ? h('span', { class: 'err-count' }, `${t.errors} error${t.errors === 1 ? '' : 's'}`) : null,
      [...t.services.entries()].sort().map(([name, n]) =>
        h('span', { class: 'chip', style: { borderLeftColor: serviceColour(name) } }, `${name} (${n})`)),
      h('span', { class: 'spacer' }),
      h('time', { title: fmtTime(t.start) }, `${fmtTime(t.start)} · ${fmtAgo(t.start)}`),
      h('code', { class: 'tid' }, t.id.slice(0, 12))));
}

// Duration against start time; bubble size grows with span count. Traces with errors are red,
// crossed and drawn on top, so a failing trace is never hidden under a healthy one.
function scatter(traces, ctx) {
  const W = 900, H = 180, L = 60, R = 16, T = 12, B = 26;
  let t0 = Math.min(...traces.map((t) => t.start)), t1 = Math.max(...traces.map((t) => t.start));
  if (t1 - t0 < 1e6) { t0 -= 5e5; t1 += 5e5; }
  const yTicks = niceTicks(0, Math.max(...traces.map((t) => t.duration)) || 1, 3);
  const dMax = yTicks[yTicks.length - 1];
  const x = (v) => L + ((v - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => H - B - (v / dMax) * (H - T - B);
  const svg = s('svg', { class: 'scatter', id: 'scatter', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Trace duration against start time' });
  for (const v of yTicks) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmtDuration(v)));
  }
  // Round, distinct times (ms precision only when the results span under a second or so).
  const ticks = timeTicks(t0 / 1000, t1 / 1000, 6);
  for (const tk of ticks) {
    const px = x(tk.t * 1000);
    svg.append(s('line', { x1: px, x2: px, y1: H - B, y2: H - B + 4, class: 'grid' }),
      s('text', { x: px, y: H - 8, 'text-anchor': px < L + 40 ? 'start' : px > W - R - 40 ? 'end' : 'middle', class: 'axis x-tick' }, tk.label));
  }
  const ordered = traces.filter((t) => !t.errors).concat(traces.filter((t) => t.errors));
  for (const t of ordered) {
    const r = Math.min(14, 4 + Math.sqrt(t.spans));
    const cx = x(t.start), cy = y(t.duration);
    const dot = s('g', { class: 'dot-g', tabindex: 0, role: 'link', dataset: { traceId: t.id, errors: String(t.errors) },
      'aria-label': `${t.rootService}: ${t.rootName}, ${fmtDuration(t.duration)}${t.errors ? `, ${t.errors} errors` : ''}` },
    s('circle', { cx, cy, r, class: 'dot' + (t.errors ? ' err' : '') }),
    t.errors ? s('path', { d: `M${cx - r * 0.45},${cy - r * 0.45}L${cx + r * 0.45},${cy + r * 0.45}M${cx + r * 0.45},${cy - r * 0.45}L${cx - r * 0.45},${cy + r * 0.45}`, class: 'err-cross' }) : null,
    s('title', null, `${t.rootService}: ${t.rootName}\n${fmtDuration(t.duration)}, ${t.spans} spans${t.errors ? `, ${t.errors} with errors` : ''}\n${fmtTime(t.start)}`));
    const open = () => ctx.navigate(`/trace/${t.id}`);
    dot.addEventListener('click', open);
    dot.addEventListener('keydown', (e) => { if (e.key === 'Enter') open(); });
    svg.append(dot);
  }
  return svg;
}

function scatterLegend(traces) {
  const failing = traces.filter((t) => t.errors).length;
  return h('div', { class: 'scatter-legend', id: 'scatter-legend' },
    h('span', null, h('span', { class: 'sw' }), 'trace (size: spans)'),
    h('span', null, h('span', { class: 'sw err' }), `with errors (${failing})`));
}
