// The span details panel shared by every view of a trace: facts, attributes, events, links and
// resource. Every value is a text node.
import { h, fmtDuration, fmtTime, serviceColour } from './dom.js';

export function tagValue(v) {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

// details: the <aside>; sp: the span or null; select(sp) moves the selection (parent, links).
export function renderDetails(details, sp, model, cp, select, onClose) {
  if (!sp) { details.hidden = true; return; }
  details.hidden = false;
  const close = h('button', { type: 'button', class: 'btn ghost close', 'aria-label': 'Close details (Esc)', title: 'Close (Esc)' }, '×');
  close.addEventListener('click', onClose);
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
      cp && cp.has(sp.id) ? ['Critical path', fmtDuration(cp.get(sp.id).reduce((n, [a, b]) => n + b - a, 0))] : null,
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

export function fact(label, value, id) {
  return h('div', { class: 'fact', id: id || null }, h('dt', null, label), h('dd', null, value));
}

function section(title, count, content) {
  return h('details', { class: 'section', open: count > 0 && count < 200 ? true : null },
    h('summary', null, `${title} (${count})`),
    count ? content : h('p', { class: 'muted' }, `No ${title.toLowerCase()}.`));
}

export function kvTable(rows, id) {
  return h('table', { class: 'kv', id: id || null }, h('tbody', null, rows.map(([k, v]) =>
    h('tr', null, h('th', { scope: 'row' }, k), h('td', null, v instanceof Node ? v : h('span', { class: 'value' }, v))))));
}

export function linkButton(label, onClick, id) {
  const b = h('button', { type: 'button', class: 'linkish', id: id || null }, label);
  b.addEventListener('click', onClick);
  return b;
}
