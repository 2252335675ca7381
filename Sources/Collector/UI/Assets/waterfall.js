// Timeline view of a trace: a virtualized waterfall with a collapsible span tree, critical path
// and find. Only the rows on screen exist in the DOM, so 10,000 spans scroll smoothly.
import { h, fmtDuration, serviceColour } from './dom.js';
import { tagValue } from './spandetails.js';

const ROW_H = 26;
const OVERSCAN = 12;
const MAX_INDENT_LEVELS = 24;

export function mountTimeline(container, env) {
  const { model, cp, params } = env;
  const collapsed = new Set();
  let visible = [];
  let cursor = 0;
  let showCP = true;
  let find = params.get('uiFind') || '';
  let matches = new Set();

  const cpToggle = h('input', { type: 'checkbox', id: 'cp-toggle', checked: true });
  const findIn = h('input', { type: 'search', id: 'trace-find', placeholder: 'Find in trace…  (/)', value: find, spellcheck: 'false', 'aria-label': 'Find spans' });
  const findCount = h('span', { class: 'find-count', id: 'find-count' });
  const expandAll = h('button', { type: 'button', class: 'btn ghost', id: 'expand-all' }, 'Expand all');
  const collapseAll = h('button', { type: 'button', class: 'btn ghost', id: 'collapse-all' }, 'Collapse all');
  env.tools.replaceChildren(findIn, findCount,
    h('label', { class: 'inline cp-label', title: "Jaeger's rule: follow the last-finishing child" }, cpToggle, ' Critical path'),
    expandAll, collapseAll);

  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const ruler = h('div', { class: 'wf-head' },
    h('div', { class: 'name-col' }, 'Service & operation'),
    h('div', { class: 'bar-col ruler' }, ticks.map((f) =>
      h('span', { class: 'tick', style: { left: `${f * 100}%` } }, fmtDuration(model.duration * f)))));
  const spacer = h('div', { class: 'wf-spacer' });
  const scroller = h('div', { class: 'wf-scroll', id: 'waterfall', tabindex: 0, role: 'tree', 'aria-label': 'Span tree' }, spacer);
  const waterfall = h('div', { class: 'waterfall' }, ruler, scroller);
  container.replaceChildren(waterfall);

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
    const selected = env.selected();
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
    row.addEventListener('click', () => { cursor = index; env.select(sp); });
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
    env.setParam('uiFind', find || null);
  }
  function nextMatch(dir) {
    if (!matches.size) return;
    const order = model.spans.filter((sp) => matches.has(sp));
    const cur = env.selected() ? order.indexOf(env.selected()) : -1;
    const next = order[(cur + dir + order.length) % order.length] || order[0];
    env.select(next);
  }
  let findTimer = 0;
  findIn.addEventListener('input', () => { clearTimeout(findTimer); findTimer = setTimeout(applyFind, 150); });
  findIn.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); applyFind(); nextMatch(e.shiftKey ? -1 : 1); }
    if (e.key === 'Escape') { findIn.value = ''; applyFind(); scroller.focus(); }
  });
  cpToggle.addEventListener('change', () => { showCP = cpToggle.checked; paint(true); });
  expandAll.addEventListener('click', () => { collapsed.clear(); computeVisible(); paint(true); });
  collapseAll.addEventListener('click', () => {
    for (const sp of model.spans) if (sp.children.length && sp.depth >= 1) collapsed.add(sp.id);
    computeVisible(); cursor = 0; scroller.scrollTop = 0; paint(true);
  });

  const onKey = (e) => {
    const sp = visible[cursor];
    const move = (to) => { cursor = Math.max(0, Math.min(visible.length - 1, to)); scrollToIndex(cursor); paint(true); if (env.selected()) env.select(visible[cursor]); };
    switch (e.key) {
      case 'j': case 'ArrowDown': move(cursor + 1); return true;
      case 'k': case 'ArrowUp': move(cursor - 1); return true;
      case 'PageDown': move(cursor + Math.floor(scroller.clientHeight / ROW_H)); return true;
      case 'PageUp': move(cursor - Math.floor(scroller.clientHeight / ROW_H)); return true;
      case 'Home': move(0); return true;
      case 'End': move(visible.length - 1); return true;
      case 'Enter': if (sp) env.select(sp); return true;
      case 'h': case 'ArrowLeft':
        if (sp && sp.children.length && !collapsed.has(sp.id)) setCollapsed(sp, true);
        else if (sp && sp.parent) { cursor = visible.indexOf(sp.parent); scrollToIndex(cursor); paint(true); }
        return true;
      case 'l': case 'ArrowRight': if (sp && collapsed.has(sp.id)) setCollapsed(sp, false); return true;
      case 'n': nextMatch(1); return true;
      case 'N': nextMatch(-1); return true;
      default: return false;
    }
  };

  computeVisible();
  if (find) applyFind();
  const selected = env.selected();
  if (selected) reveal(selected);
  paint(true);
  scroller.focus({ preventScroll: true });
  return {
    focusTarget: findIn,
    onKey,
    onSelect(sp) { if (sp) reveal(sp); paint(true); },
    focus() { scroller.focus(); },
    rows: () => spacer.childElementCount,
    destroy() { window.removeEventListener('resize', onResize); },
  };
}

function countDescendants(sp) {
  let n = 0;
  const stack = [...sp.children];
  while (stack.length) { const c = stack.pop(); n++; for (const k of c.children) stack.push(k); }
  return n;
}
