// Spans table of one trace: sortable by service, operation, duration, self time, start, kind and
// status, with a filter; virtualized like the waterfall, so 10,000 rows cost a screenful.
import { h, fmtDuration, serviceColour } from './dom.js';
import { selfTimes } from './tracestats.js';

const ROW_H = 26;
const OVERSCAN = 10;

// [key, label, class, value(sp, self), default direction]
const COLUMNS = [
  ['service', 'Service', 'c-service', (sp) => sp.service, 'asc'],
  ['operation', 'Operation', 'c-op', (sp) => sp.name, 'asc'],
  ['duration', 'Duration', 'c-num', (sp) => sp.duration, 'desc'],
  ['self', 'Self time', 'c-num', (sp, self) => self.get(sp), 'desc'],
  ['start', 'Start', 'c-num', (sp) => sp.start, 'asc'],
  ['kind', 'Kind', 'c-kind', (sp) => sp.kind, 'asc'],
  ['status', 'Status', 'c-status', (sp) => (sp.error ? 1 : 0), 'desc'],
];

export function sortSpans(spans, key, dir, self) {
  const col = COLUMNS.find((c) => c[0] === key) || COLUMNS[2];
  const get = col[3], sign = dir === 'asc' ? 1 : -1;
  // Ties keep trace order (the waterfall's), so equal rows do not jump around between sorts.
  const index = new Map(spans.map((sp, i) => [sp, i]));
  return spans.slice().sort((a, b) => {
    const va = get(a, self), vb = get(b, self);
    const c = typeof va === 'string' ? va.localeCompare(vb) : va - vb;
    return c * sign || index.get(a) - index.get(b);
  });
}

export function mountSpanTable(container, env) {
  const { model, params } = env;
  const self = selfTimes(model);
  let sort = COLUMNS.some((c) => c[0] === params.get('sort')) ? params.get('sort') : 'duration';
  let dir = params.get('dir') === 'asc' || params.get('dir') === 'desc' ? params.get('dir') : COLUMNS.find((c) => c[0] === sort)[4];
  let filter = '';
  let rows = [];
  const filterIn = h('input', { type: 'search', id: 'table-filter', placeholder: 'Filter by service or operation…', spellcheck: 'false', 'aria-label': 'Filter spans' });
  const count = h('span', { class: 'find-count', id: 'table-count' });
  env.tools.replaceChildren(filterIn, count);
  const headCells = COLUMNS.map(([key, label, cls]) => {
    const b = h('button', { type: 'button', dataset: { sort: key } }, label);
    b.addEventListener('click', () => {
      if (sort === key) dir = dir === 'asc' ? 'desc' : 'asc'; else { sort = key; dir = COLUMNS.find((c) => c[0] === key)[4]; }
      env.setParam('sort', sort); env.setParam('dir', dir);
      refresh();
    });
    return h('span', { class: cls }, b);
  });
  const head = h('div', { class: 'stable-head', role: 'row' }, headCells);
  const spacer = h('div', { class: 'wf-spacer' });
  const scroller = h('div', { class: 'wf-scroll', id: 'span-table', tabindex: 0, role: 'grid', 'aria-label': 'Spans' }, spacer);
  container.replaceChildren(h('div', { class: 'waterfall' }, head, scroller));

  function refresh() {
    const q = filter.toLowerCase();
    const base = q ? model.spans.filter((sp) => sp.service.toLowerCase().includes(q) || sp.name.toLowerCase().includes(q)) : model.spans;
    rows = sortSpans(base, sort, dir, self);
    for (const c of headCells) {
      const b = c.firstChild;
      if (b.dataset.sort === sort) b.setAttribute('aria-sort', dir === 'asc' ? 'ascending' : 'descending'); else b.removeAttribute('aria-sort');
    }
    count.textContent = q ? `${rows.length} of ${model.spans.length}` : `${rows.length} spans`;
    spacer.style.height = `${rows.length * ROW_H}px`;
    paint(true);
  }

  let last = null;
  function paint(force) {
    head.style.paddingRight = `${scroller.offsetWidth - scroller.clientWidth}px`;
    const top = scroller.scrollTop, height = scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const end = Math.min(rows.length, Math.ceil((top + height) / ROW_H) + OVERSCAN);
    if (!force && last && last[0] === first && last[1] === end) return;
    last = [first, end];
    const out = [];
    const selected = env.selected();
    for (let i = first; i < end; i++) {
      const sp = rows[i];
      const row = h('div', { class: 'stable-row' + (sp.error ? ' error' : '') + (sp === selected ? ' selected' : ''), role: 'row',
        dataset: { spanId: sp.id, index: String(i), duration: String(sp.duration), self: String(self.get(sp)), service: sp.service },
        style: { transform: `translateY(${i * ROW_H}px)` } },
      h('span', { class: 'c-service' }, h('span', { class: 'swatch', style: { background: serviceColour(sp.service) } }), sp.service),
      h('span', { class: 'c-op', title: sp.name }, sp.name),
      h('span', { class: 'c-num' }, fmtDuration(sp.duration)),
      h('span', { class: 'c-num' }, fmtDuration(self.get(sp))),
      h('span', { class: 'c-num' }, `+${fmtDuration(sp.start - model.start)}`),
      h('span', { class: 'c-kind' }, sp.kind || '–'),
      h('span', { class: 'c-status' }, sp.error ? 'error' : 'ok'));
      row.addEventListener('click', () => env.select(sp));
      out.push(row);
    }
    spacer.replaceChildren(...out);
  }
  let raf = 0;
  scroller.addEventListener('scroll', () => { if (!raf) raf = requestAnimationFrame(() => { raf = 0; paint(false); }); });
  let timer = 0;
  filterIn.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { filter = filterIn.value.trim(); scroller.scrollTop = 0; refresh(); }, 120); });
  const onResize = () => paint(true);
  window.addEventListener('resize', onResize);
  refresh();
  return {
    focusTarget: filterIn,
    onSelect() { paint(true); },
    focus() { scroller.focus(); },
    rows: () => spacer.childElementCount,
    destroy() { window.removeEventListener('resize', onResize); env.setParam('sort', null); env.setParam('dir', null); },
  };
}
