// Per-service statistics of one trace, and self time (a span's duration not covered by its
// children), which the table and graph views use too.
import { h, fmtDuration, serviceColour } from './dom.js';

// Self time: duration minus the union of the children's (clipped) intervals. Map span -> µs.
export function selfTimes(model) {
  if (model.self) return model.self;
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
  model.self = out;
  return out;
}

export function mountStats(container, env) {
  const { model } = env;
  const self = selfTimes(model);
  const by = new Map();
  for (const sp of model.spans) {
    let r = by.get(sp.service);
    if (!r) by.set(sp.service, r = { service: sp.service, spans: 0, errors: 0, total: 0, self: 0, max: 0, ops: new Set() });
    r.spans++; if (sp.error) r.errors++; r.total += sp.duration; r.self += self.get(sp); r.max = Math.max(r.max, sp.duration); r.ops.add(sp.name);
  }
  const rows = [...by.values()].sort((a, b) => b.self - a.self);
  container.replaceChildren(h('div', { class: 'stats', id: 'trace-stats' },
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
        h('td', { class: 'num' }, fmtDuration(r.total / r.spans)), h('td', { class: 'num' }, fmtDuration(r.max))))))));
  return {};
}
