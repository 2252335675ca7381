// Trace comparison at /trace/{A}...{B} (Jaeger's URL): the structural diff from
// /api/meshtrace/compare, both span trees merged on (service, operation) paths. Each path is in
// both traces, only in A or only in B, with counts and mean durations side by side.
import { h, state, fmtDuration, fmtTime, serviceColour, registerServices } from './dom.js';
import { getJSON } from './api.js';

const ROW_H = 26;
const OVERSCAN = 10;
// A mean duration within this share of A's counts as unchanged.
const SAME = 0.1;

export function change(n) {
  if (n.presence !== 'both') return { kind: n.presence, ratio: null };
  const ma = n.a.durationMicros / n.a.count, mb = n.b.durationMicros / n.b.count;
  const ratio = ma > 0 ? mb / ma : mb > 0 ? Infinity : 1;
  return { kind: ratio > 1 + SAME ? 'slower' : ratio < 1 - SAME ? 'faster' : 'same', ratio, delta: mb - ma, countChanged: n.a.count !== n.b.count };
}

// Rows worth seeing with "changes only": every changed path and the paths leading to it.
export function changedWithAncestors(nodes) {
  const keep = new Uint8Array(nodes.length);
  nodes.forEach((n, i) => {
    const c = change(n);
    if (c.kind !== 'same' || c.countChanged) for (let j = i; j >= 0 && !keep[j]; j = nodes[j].parent) keep[j] = 1;
  });
  return nodes.map((n, i) => ({ n, i })).filter(({ i }) => keep[i]);
}

export async function renderCompare(root, params, ctx, a, b) {
  root.replaceChildren(state('loading', `Comparing ${a} with ${b}…`));
  let data;
  try {
    data = (await getJSON('/api/meshtrace/compare', { a, b })).body;
  } catch (e) {
    root.replaceChildren(state(e.status === 404 ? 'empty' : 'error', 'Could not compare these traces', e.message));
    return;
  }
  registerServices(data.nodes.map((n) => n.service));
  let changesOnly = params.get('changes') === '1';
  const side = (label, t, cls) => h('div', { class: `compare-side ${cls}`, id: `compare-${cls}` },
    h('div', null, h('b', null, `${label}: `), h('a', { href: `/trace/${t.traceID}`, 'data-link': '' }, `${t.rootService}: ${t.rootOperation}`)),
    h('div', { class: 'muted' }, `${fmtDuration(t.durationMicros)} · ${t.spans} spans · ${t.services} services · `,
      t.errors ? h('span', { class: 'err-count' }, `${t.errors} errors · `) : '', fmtTime(t.startMicros), ' · ', h('code', { class: 'tid' }, t.traceID.slice(0, 12))));
  const swap = h('a', { href: `/trace/${b}...${a}`, 'data-link': '', class: 'btn', id: 'compare-swap' }, 'Swap A and B');
  const only = h('input', { type: 'checkbox', id: 'compare-changes', checked: changesOnly });
  const sum = data.summary;
  const headRow = h('div', { class: 'diff-head' }, h('span', { class: 'name' }, 'Service & operation (merged paths)'),
    ['Spans A', 'Spans B', 'Mean A', 'Mean B', 'Change'].map((c) => h('span', { class: 'cell' }, c)));
  const spacer = h('div', { class: 'wf-spacer' });
  const scroller = h('div', { class: 'wf-scroll', id: 'diff', tabindex: 0, role: 'treegrid', 'aria-label': 'Merged span paths' }, spacer);
  root.replaceChildren(h('div', { class: 'compare-page' },
    h('div', { class: 'compare-head' },
      h('h1', null, 'Compare traces'),
      h('div', { class: 'compare-sides' }, side('A', data.a, 'a'), side('B', data.b, 'b')),
      h('div', { class: 'compare-tools' },
        h('span', { id: 'compare-summary' }, `${sum.nodes} paths: ${sum.both} in both, `,
          h('b', { class: 'delta slower' }, `${sum.onlyA} only in A`), ', ', h('b', { class: 'delta', style: { color: 'var(--added)' } }, `${sum.onlyB} only in B`)),
        h('label', { class: 'inline' }, only, ' Changes only'), swap),
      h('div', { class: 'diff-legend' },
        h('span', null, h('span', { class: 'badge onlyA' }, 'A only'), ' missing from B'),
        h('span', null, h('span', { class: 'badge onlyB' }, 'B only'), ' new in B'),
        h('span', null, h('span', { class: 'delta slower' }, 'slower'), ' / ', h('span', { class: 'delta faster' }, 'faster'), ` in B by more than ${SAME * 100}% (mean per span)`))),
    h('div', { class: 'waterfall' }, headRow, scroller)));

  let rows = [];
  const refresh = () => {
    rows = changesOnly ? changedWithAncestors(data.nodes) : data.nodes.map((n, i) => ({ n, i }));
    spacer.style.height = `${rows.length * ROW_H}px`;
    paint(true);
  };
  let last = null;
  function paint(force) {
    headRow.style.paddingRight = `${scroller.offsetWidth - scroller.clientWidth}px`;
    const top = scroller.scrollTop, height = scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const end = Math.min(rows.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    if (!force && last && last[0] === first && last[1] === end) return;
    last = [first, end];
    const out = [];
    for (let k = first; k < end; k++) out.push(row(rows[k].n, k));
    spacer.replaceChildren(...out);
  }
  const maxRatio = Math.max(1, ...data.nodes.map((n) => { const c = change(n); return c.ratio && isFinite(c.ratio) ? Math.max(c.ratio, 1 / c.ratio) : 1; }));
  function row(n, k) {
    const c = change(n);
    const mean = (s) => (s.count ? fmtDuration(s.durationMicros / s.count) : '–');
    let delta = '';
    if (c.kind === 'slower' || c.kind === 'faster') {
      const mag = Math.log(Math.max(c.ratio, 1 / c.ratio)) / Math.log(maxRatio || 2);
      delta = h('span', { class: `delta ${c.kind}` }, `${c.delta > 0 ? '+' : '−'}${fmtDuration(Math.abs(c.delta))}`,
        h('span', { class: `delta-bar ${c.kind}`, style: { width: `${Math.max(3, Math.round(mag * 40))}px` } }));
    } else if (c.kind === 'same') delta = h('span', { class: 'muted' }, '≈');
    return h('div', { class: `diff-row ${n.presence}`, role: 'row',
      dataset: { presence: n.presence, service: n.service, operation: n.operation, depth: String(n.depth), change: c.kind },
      style: { transform: `translateY(${k * ROW_H}px)` } },
    h('span', { class: 'name', title: `${n.service}: ${n.operation}` },
      h('span', { class: 'indent', style: { width: `${Math.min(n.depth, 24) * 14 + 8}px` } }),
      h('span', { class: `badge ${n.presence}` }, n.presence === 'both' ? 'A+B' : n.presence === 'onlyA' ? 'A only' : 'B only'),
      h('span', { class: 'swatch', style: { background: serviceColour(n.service) } }),
      h('span', { class: 'svc' }, n.service), h('span', { class: 'op' }, n.operation),
      (n.a.errors || n.b.errors) ? h('span', { class: 'err-mark', title: `errors: ${n.a.errors} in A, ${n.b.errors} in B` }, '!') : null),
    h('span', { class: 'cell' }, String(n.a.count)), h('span', { class: 'cell' + (c.countChanged ? ' err-count' : '') }, String(n.b.count)),
    h('span', { class: 'cell' }, mean(n.a)), h('span', { class: 'cell' }, mean(n.b)), h('span', { class: 'cell' }, delta));
  }
  let raf = 0;
  scroller.addEventListener('scroll', () => { if (!raf) raf = requestAnimationFrame(() => { raf = 0; paint(false); }); });
  only.addEventListener('change', () => {
    changesOnly = only.checked;
    const u = new URL(location.href);
    if (changesOnly) u.searchParams.set('changes', '1'); else u.searchParams.delete('changes');
    history.replaceState(null, '', u.pathname + u.search);
    refresh();
  });
  const onResize = () => paint(true);
  window.addEventListener('resize', onResize);
  refresh();
  ctx.focusTarget = scroller;
  requestAnimationFrame(() => setTimeout(() => { document.documentElement.dataset.compareRendered = `${a}...${b}`; }, 0));
  return () => window.removeEventListener('resize', onResize);
}
