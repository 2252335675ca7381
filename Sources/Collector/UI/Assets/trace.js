// Trace view: virtualized waterfall with a collapsible span tree, critical path, span details,
// per-service statistics and JSON download. Deep link: /trace/{id}[?span=<spanID>][&uiFind=text][&view=stats]
import { h, state, fmtDuration, fmtTime, serviceColour, registerServices } from './dom.js';
import { getJSON, convertTrace, criticalPath } from './api.js';

const ROW_H = 26;
const OVERSCAN = 12;
const MAX_INDENT_LEVELS = 24;

function tagValue(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

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

  const collapsed = new Set();
  let visible = [];
  let selected = null; // span
  let cursor = 0; // index into visible
  let showCP = true;
  let find = params.get('uiFind') || '';
  let matches = new Set();

  // --- header -----------------------------------------------------------------------------
  const rootName = model.root ? `${model.root.service}: ${model.root.name}` : traceID;
  const download = h('button', { type: 'button', class: 'btn', id: 'download-json', title: 'Download this trace as Jaeger JSON' }, 'Download JSON');
  download.addEventListener('click', () => {
    const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    const a = h('a', { href: url, download: `trace-${model.id}.json` });
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  });
  const cpToggle = h('input', { type: 'checkbox', id: 'cp-toggle', checked: true });
  const findIn = h('input', { type: 'search', id: 'trace-find', placeholder: 'Find in trace…  (/)', value: find, spellcheck: 'false', 'aria-label': 'Find spans' });
  const findCount = h('span', { class: 'find-count', id: 'find-count' });
  const tabTimeline = h('button', { type: 'button', class: 'tab', id: 'tab-timeline', role: 'tab' }, 'Timeline');
  const tabStats = h('button', { type: 'button', class: 'tab', id: 'tab-stats', role: 'tab' }, 'Statistics');
  const expandAll = h('button', { type: 'button', class: 'btn ghost', id: 'expand-all' }, 'Expand all');
  const collapseAll = h('button', { type: 'button', class: 'btn ghost', id: 'collapse-all' }, 'Collapse all');

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
      h('div', { class: 'tabs', role: 'tablist' }, tabTimeline, tabStats),
      findIn, findCount,
      h('label', { class: 'inline cp-label', title: "Jaeger's rule: follow the last-finishing child" }, cpToggle, ' Critical path'),
      expandAll, collapseAll, download));

  // --- waterfall ----------------------------------------------------------------------------
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const ruler = h('div', { class: 'wf-head' },
    h('div', { class: 'name-col' }, 'Service & operation'),
    h('div', { class: 'bar-col ruler' }, ticks.map((f) =>
      h('span', { class: 'tick', style: { left: `${f * 100}%` } }, fmtDuration(model.duration * f)))));
  const spacer = h('div', { class: 'wf-spacer' });
  const scroller = h('div', { class: 'wf-scroll', id: 'waterfall', tabindex: 0, role: 'tree', 'aria-label': 'Span tree' }, spacer);
  const details = h('aside', { class: 'details', id: 'span-details', hidden: true });
  const waterfall = h('div', { class: 'waterfall' }, ruler, scroller);
  const stats = h('div', { class: 'stats', id: 'trace-stats', hidden: true });
  const body2 = h('div', { class: 'trace-body' }, waterfall, stats, details);
  root.replaceChildren(h('div', { class: 'trace-page' }, head, body2));

  const pct = (us) => ((us - model.start) / (model.duration || 1)) * 100;

  function computeVisible() {
    const out = [];
    let skip = Infinity;
    for (const sp of model.spans) {
      if (sp.depth > skip) continue;
      skip = Infinity;
      out.push(sp);
      if (collapsed.has(sp.id) && sp.children.length) skip = sp.depth;
    }
    visible = out;
    spacer.style.height = `${visible.length * ROW_H}px`;
  }

  function rowFor(sp, index) {
    const isCollapsed = collapsed.has(sp.id);
    const colour = serviceColour(sp.service);
    const indent = Math.min(sp.depth, MAX_INDENT_LEVELS) * 14;
    const toggle = sp.children.length
      ? h('button', { type: 'button', class: 'toggle', tabindex: -1, 'aria-label': isCollapsed ? 'Expand' : 'Collapse',
        title: `${isCollapsed ? 'Expand' : 'Collapse'} ${sp.children.length} child span${sp.children.length === 1 ? '' : 's'}` },
      isCollapsed ? '▸' : '▾')
      : h('span', { class: 'toggle-spacer' });
    const left = pct(sp.start), width = Math.max((sp.duration / (model.duration || 1)) * 100, 0.15);
    const bar = h('div', { class: 'bar' + (sp.error ? ' error' : '') + (sp.inferred ? ' inferred' : ''), style: { left: `${left}%`, width: `${width}%`, background: colour } });
    if (showCP && cp.has(sp.id)) {
      for (const [a, b] of cp.get(sp.id)) {
        bar.append(h('div', { class: 'cp', style: { left: `${((a - sp.start) / (sp.duration || 1)) * 100}%`, width: `${((b - a) / (sp.duration || 1)) * 100}%` } }));
      }
    }
    // Right of the bar when there is room, else left of it, else inside it.
    const where = left + width < 85 ? { left: `calc(${left + width}% + 4px)` }
      : left > 10 ? { right: `calc(${100 - left}% + 4px)` } : { right: `calc(${100 - left - width}% + 4px)` };
    const inside = !(left + width < 85) && !(left > 10);
    const label = h('span', { class: 'dur-label' + (inside ? ' inside' : ''), style: where }, fmtDuration(sp.duration));
    const row = h('div', {
      class: 'row' + (sp === selected ? ' selected' : '') + (index === cursor ? ' cursor' : '') + (matches.has(sp) ? ' match' : '') + (sp.error ? ' has-error' : ''),
      role: 'treeitem', 'aria-level': sp.depth + 1, 'aria-selected': sp === selected ? 'true' : 'false',
      'aria-expanded': sp.children.length ? String(!isCollapsed) : null,
      dataset: { spanId: sp.id, depth: String(sp.depth), service: sp.service, index: String(index) },
      style: { transform: `translateY(${index * ROW_H}px)` },
    },
    h('div', { class: 'name-col', title: `${sp.service}: ${sp.name}${sp.depth > MAX_INDENT_LEVELS ? ` (depth ${sp.depth + 1})` : ''}` },
      h('span', { class: 'indent' + (sp.inferred ? ' inferred-link' : ''), style: { width: `${indent}px` },
        title: sp.inferred ? 'parent inferred by the sidecar (the app did not forward trace headers)' : null }), toggle,
      h('span', { class: 'swatch', style: { background: colour } }),
      h('span', { class: 'svc' }, sp.service),
      h('span', { class: 'op' }, sp.name),
      sp.error ? h('span', { class: 'err-mark', title: 'error' }, '!') : null,
      sp.inferred ? h('span', { class: 'inferred-mark', title: 'parent inferred by the sidecar (meshtrace.parent_inferred)' }, 'inferred') : null,
      isCollapsed ? h('span', { class: 'hidden-count' }, `+${countDescendants(sp)}`) : null),
    h('div', { class: 'bar-col' }, bar, label));
    if (sp.children.length) toggle.addEventListener('click', (e) => { e.stopPropagation(); setCollapsed(sp, !isCollapsed); });
    row.addEventListener('click', () => { cursor = index; select(sp); });
    return row;
  }

  let lastRange = null;
  function paint(force) {
    ruler.style.paddingRight = `${scroller.offsetWidth - scroller.clientWidth}px`;
    const top = scroller.scrollTop, height = scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(visible.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    if (!force && lastRange && lastRange[0] === first && lastRange[1] === last) return;
    lastRange = [first, last];
    const rows = [];
    for (let i = first; i < last; i++) rows.push(rowFor(visible[i], i));
    spacer.replaceChildren(...rows);
  }
  let raf = 0;
  scroller.addEventListener('scroll', () => { if (!raf) raf = requestAnimationFrame(() => { raf = 0; paint(false); }); });
  const onResize = () => paint(true);
  window.addEventListener('resize', onResize);

  function setCollapsed(sp, value) {
    if (!sp.children.length) return;
    if (value) collapsed.add(sp.id); else collapsed.delete(sp.id);
    computeVisible();
    cursor = Math.max(0, visible.indexOf(sp));
    paint(true);
  }

  function scrollToIndex(i) {
    const top = i * ROW_H;
    if (top < scroller.scrollTop) scroller.scrollTop = top;
    else if (top + ROW_H > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + ROW_H - scroller.clientHeight;
  }

  function reveal(sp) {
    let changed = false;
    for (let p = sp.parent; p; p = p.parent) if (collapsed.delete(p.id)) changed = true;
    if (changed) computeVisible();
    cursor = visible.indexOf(sp);
    scrollToIndex(cursor);
  }

  function updateURL() {
    const u = new URL(location.href);
    if (selected) u.searchParams.set('span', selected.id); else u.searchParams.delete('span');
    if (find) u.searchParams.set('uiFind', find); else u.searchParams.delete('uiFind');
    if (!stats.hidden) u.searchParams.set('view', 'stats'); else u.searchParams.delete('view');
    history.replaceState(null, '', u.pathname + u.search);
  }

  function select(sp) {
    selected = sp;
    if (sp) reveal(sp);
    paint(true);
    renderDetails();
    updateURL();
  }

  function renderDetails() {
    if (!selected) { details.hidden = true; body2.classList.remove('with-details'); return; }
    const sp = selected;
    details.hidden = false;
    body2.classList.add('with-details');
    const close = h('button', { type: 'button', class: 'btn ghost close', 'aria-label': 'Close details (Esc)', title: 'Close (Esc)' }, '×');
    close.addEventListener('click', () => { select(null); scroller.focus(); });
    const parentEl = sp.parent
      ? linkButton(`${sp.parent.service}: ${sp.parent.name}`, () => select(sp.parent), 'parent-link')
      : h('span', { class: 'muted' }, sp.parentID ? `${sp.parentID} (not in this trace)` : 'none (root span)');
    const links = sp.refs.filter((r) => r.refType !== 'CHILD_OF' || r.traceID !== sp.traceID);
    const process = [['service.name', sp.process.serviceName], ...(sp.process.tags || []).map((t) => [t.key, tagValue(t.value)])];
    details.replaceChildren(
      h('div', { class: 'details-head' },
        h('span', { class: 'swatch', style: { background: serviceColour(sp.service) } }),
        h('h2', { id: 'details-title' }, sp.name), close),
      h('p', { class: 'details-sub' }, h('b', null, sp.service), sp.kind ? ` · ${sp.kind}` : '', sp.error ? h('span', { class: 'err-count' }, ' · error') : ''),
      kvTable([
        ['Span ID', sp.id], ['Parent', parentEl],
        ['Start', `${fmtDuration(sp.start - model.start)} after trace start (${fmtTime(sp.start)})`],
        ['Duration', fmtDuration(sp.duration)],
        ['Children', String(sp.children.length)],
        cp.has(sp.id) ? ['Critical path', fmtDuration(cp.get(sp.id).reduce((n, [a, b]) => n + b - a, 0))] : null,
      ].filter(Boolean), 'span-facts'),
      section('Attributes', sp.tags.length, kvTable(sp.tags.map((t) => [t.key, tagValue(t.value)]), 'span-attributes')),
      section('Events', sp.logs.length, h('ol', { class: 'events', id: 'span-events' }, sp.logs.map((l) =>
        h('li', null, h('span', { class: 'muted' }, `+${fmtDuration(l.timestamp - model.start)}`),
          kvTable((l.fields || []).map((f) => [f.key, tagValue(f.value)])))))),
      section('Links', links.length, h('ul', { class: 'links', id: 'span-links' }, links.map((r) => {
        const same = r.traceID === sp.traceID && model.byID.get(r.spanID);
        return h('li', null, h('span', { class: 'muted' }, r.refType === 'FOLLOWS_FROM' ? 'link → ' : 'child of → '),
          same ? linkButton(`${same.service}: ${same.name}`, () => select(same))
            : h('a', { href: `/trace/${r.traceID}?span=${r.spanID}`, 'data-link': '' }, `trace ${r.traceID} / span ${r.spanID}`));
      }))),
      section('Resource', process.length, kvTable(process, 'span-resource')),
      sp.warnings.length ? section('Warnings', sp.warnings.length, h('ul', null, sp.warnings.map((w) => h('li', null, w)))) : null);
  }

  // --- find -----------------------------------------------------------------------------------
  function applyFind() {
    find = findIn.value.trim();
    matches = new Set();
    if (find) {
      const q = find.toLowerCase();
      for (const sp of model.spans) {
        if (sp.name.toLowerCase().includes(q) || sp.service.toLowerCase().includes(q) || sp.id === q
          || sp.tags.some((t) => t.key.toLowerCase().includes(q) || tagValue(t.value).toLowerCase().includes(q))) matches.add(sp);
      }
      findCount.textContent = `${matches.size} match${matches.size === 1 ? '' : 'es'}`;
    } else findCount.textContent = '';
    paint(true);
    updateURL();
  }
  function nextMatch(dir) {
    if (!matches.size) return;
    const order = model.spans.filter((sp) => matches.has(sp));
    const cur = selected ? order.indexOf(selected) : -1;
    const next = order[(cur + dir + order.length) % order.length] || order[0];
    select(next);
  }
  let findTimer = 0;
  findIn.addEventListener('input', () => { clearTimeout(findTimer); findTimer = setTimeout(applyFind, 150); });
  findIn.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); applyFind(); nextMatch(e.shiftKey ? -1 : 1); }
    if (e.key === 'Escape') { findIn.value = ''; applyFind(); scroller.focus(); }
  });

  // --- statistics -------------------------------------------------------------------------------
  function renderStats() {
    const self = selfTimes(model);
    const by = new Map();
    for (const sp of model.spans) {
      let r = by.get(sp.service);
      if (!r) by.set(sp.service, r = { service: sp.service, spans: 0, errors: 0, total: 0, self: 0, max: 0, ops: new Set() });
      r.spans++; if (sp.error) r.errors++; r.total += sp.duration; r.self += self.get(sp); r.max = Math.max(r.max, sp.duration); r.ops.add(sp.name);
    }
    const rows = [...by.values()].sort((a, b) => b.self - a.self);
    stats.replaceChildren(
      h('h2', null, 'Per-service statistics'),
      h('p', { class: 'muted' }, 'Self time: a span\'s duration not covered by its children. Sorted by self time.'),
      h('table', { class: 'stats-table', id: 'stats-table' },
        h('thead', null, h('tr', null, ['Service', 'Spans', 'Operations', 'Errors', 'Total time', 'Self time', '% of trace (self)', 'Avg duration', 'Max duration'].map((c) => h('th', null, c)))),
        h('tbody', null, rows.map((r) => h('tr', { dataset: { service: r.service } },
          h('td', null, h('span', { class: 'swatch', style: { background: serviceColour(r.service) } }), r.service),
          h('td', { class: 'num' }, String(r.spans)), h('td', { class: 'num' }, String(r.ops.size)),
          h('td', { class: 'num' + (r.errors ? ' err-count' : '') }, String(r.errors)),
          h('td', { class: 'num' }, fmtDuration(r.total)), h('td', { class: 'num' }, fmtDuration(r.self)),
          h('td', { class: 'num' }, `${((r.self / (model.duration || 1)) * 100).toFixed(1)}%`),
          h('td', { class: 'num' }, fmtDuration(r.total / r.spans)), h('td', { class: 'num' }, fmtDuration(r.max)))))));
  }

  function showView(view) {
    const isStats = view === 'stats';
    stats.hidden = !isStats;
    waterfall.hidden = isStats;
    tabStats.setAttribute('aria-selected', String(isStats));
    tabTimeline.setAttribute('aria-selected', String(!isStats));
    if (isStats) renderStats(); else paint(true);
    updateURL();
  }
  tabTimeline.addEventListener('click', () => showView('timeline'));
  tabStats.addEventListener('click', () => showView('stats'));
  cpToggle.addEventListener('change', () => { showCP = cpToggle.checked; paint(true); });
  expandAll.addEventListener('click', () => { collapsed.clear(); computeVisible(); paint(true); });
  collapseAll.addEventListener('click', () => {
    for (const sp of model.spans) if (sp.children.length && sp.depth >= 1) collapsed.add(sp.id);
    computeVisible(); cursor = 0; scroller.scrollTop = 0; paint(true);
  });

  // --- keyboard ---------------------------------------------------------------------------------
  ctx.focusTarget = findIn;
  ctx.onKey = (e) => {
    if (waterfall.hidden) return false;
    const sp = visible[cursor];
    const move = (to) => { cursor = Math.max(0, Math.min(visible.length - 1, to)); scrollToIndex(cursor); paint(true); if (selected) select(visible[cursor]); };
    switch (e.key) {
      case 'j': case 'ArrowDown': move(cursor + 1); return true;
      case 'k': case 'ArrowUp': move(cursor - 1); return true;
      case 'PageDown': move(cursor + Math.floor(scroller.clientHeight / ROW_H)); return true;
      case 'PageUp': move(cursor - Math.floor(scroller.clientHeight / ROW_H)); return true;
      case 'Home': move(0); return true;
      case 'End': move(visible.length - 1); return true;
      case 'Enter': if (sp) select(sp); return true;
      case 'h': case 'ArrowLeft':
        if (sp && sp.children.length && !collapsed.has(sp.id)) setCollapsed(sp, true);
        else if (sp && sp.parent) { cursor = visible.indexOf(sp.parent); scrollToIndex(cursor); paint(true); }
        return true;
      case 'l': case 'ArrowRight': if (sp && collapsed.has(sp.id)) setCollapsed(sp, false); return true;
      case 'Escape': if (selected) { select(null); return true; } return false;
      case 'n': nextMatch(1); return true;
      case 'N': nextMatch(-1); return true;
      default: return false;
    }
  };

  computeVisible();
  if (find) applyFind();
  const want = params.get('span') && model.byID.get(params.get('span'));
  if (want) select(want); else paint(true);
  if (params.get('view') === 'stats') showView('stats');
  else showView('timeline');
  scroller.focus({ preventScroll: true });

  // Timing for docs/performance.md: fetch, model (tree + critical path), first rows on screen.
  const tPainted = performance.now();
  requestAnimationFrame(() => setTimeout(() => {
    window.__meshtraceRender = { spans: model.spans.length, fetchMs: tFetched - t0, modelMs: tModel - tFetched,
      domMs: tPainted - tModel, totalMs: performance.now() - t0, sinceNavigationMs: performance.now(), rows: spacer.childElementCount };
    document.documentElement.dataset.traceRendered = model.id;
  }, 0));

  return () => { window.removeEventListener('resize', onResize); };
}

function fact(label, value, id) {
  return h('div', { class: 'fact', id: id || null }, h('dt', null, label), h('dd', null, value));
}

function section(title, count, content) {
  return h('details', { class: 'section', open: count > 0 && count < 200 ? true : null },
    h('summary', null, `${title} (${count})`),
    count ? content : h('p', { class: 'muted' }, `No ${title.toLowerCase()}.`));
}

function kvTable(rows, id) {
  return h('table', { class: 'kv', id: id || null }, h('tbody', null, rows.map(([k, v]) =>
    h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v instanceof Node ? v : h('span', { class: 'value' }, v))))));
}

function linkButton(label, onClick, id) {
  const b = h('button', { type: 'button', class: 'linkish', id: id || null }, label);
  b.addEventListener('click', onClick);
  return b;
}

function countDescendants(sp) {
  let n = 0;
  const stack = [...sp.children];
  while (stack.length) { const c = stack.pop(); n++; for (const k of c.children) stack.push(k); }
  return n;
}

// Self time: duration minus the union of the children's (clipped) intervals.
function selfTimes(model) {
  const out = new Map();
  for (const sp of model.spans) {
    const s0 = sp.start, e0 = sp.start + sp.duration;
    const iv = sp.children.map((c) => [Math.max(s0, c.start), Math.min(e0, c.start + c.duration)]).filter(([a, b]) => b > a)
      .sort((a, b) => a[0] - b[0]);
    let covered = 0, cs = -Infinity, ce = -Infinity;
    for (const [a, b] of iv) {
      if (a > ce) { if (ce > cs) covered += ce - cs; cs = a; ce = b; } else ce = Math.max(ce, b);
    }
    if (ce > cs) covered += ce - cs;
    out.set(sp, Math.max(0, sp.duration - covered));
  }
  return out;
}
