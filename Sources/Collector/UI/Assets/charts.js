// Small SVG charts: a sparkline for side panels and table rows, and a time-series line chart with
// axes, legend and a hover read-out for the monitor page. Gaps (null) stay gaps.
import { h, s } from './dom.js';
import { timeTicks, niceTicks } from './ticks.js';

// Path through the points, broken wherever a value is null.
export function linePath(points, x, y) {
  let d = '', pen = false;
  for (const p of points) {
    if (p.v == null || !isFinite(p.v)) { pen = false; continue; }
    d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
    pen = true;
  }
  return d;
}

// values: numbers or null, evenly spaced. The last value is dotted; the title says min/max/last.
export function sparkline(values, opts = {}) {
  const W = opts.width || 120, H = opts.height || 28, P = 3;
  const fmt = opts.format || ((v) => String(v));
  const finite = values.filter((v) => v != null && isFinite(v));
  const max = Math.max(opts.min0 === false ? -Infinity : 0, ...finite), min = opts.min0 === false ? Math.min(...finite) : 0;
  const span = max - min || 1;
  const x = (i) => P + (i / Math.max(1, values.length - 1)) * (W - 2 * P);
  const y = (v) => H - P - ((v - min) / span) * (H - 2 * P);
  const pts = values.map((v, i) => ({ t: i, v }));
  const svg = s('svg', { class: 'spark' + (opts.cls ? ' ' + opts.cls : ''), viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': `${opts.label || 'trend'}: ${finite.length ? `last ${fmt(lastOf(values))}, max ${fmt(max)}` : 'no data'}` });
  svg.append(s('line', { x1: P, x2: W - P, y1: H - P, y2: H - P, class: 'spark-base' }));
  if (finite.length) {
    const area = linePath(pts, x, y);
    svg.append(s('path', { d: area, class: 'spark-line' }));
    const li = lastIndex(values);
    if (li >= 0) svg.append(s('circle', { cx: x(li), cy: y(values[li]), r: 2, class: 'spark-dot' }));
  }
  svg.append(s('title', null, `${opts.label || ''}${finite.length ? ` · last ${fmt(lastOf(values))} · max ${fmt(max)}` : ' · no data'}`));
  return svg;
}

function lastIndex(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] != null && isFinite(values[i])) return i;
  return -1;
}
function lastOf(values) { const i = lastIndex(values); return i < 0 ? null : values[i]; }

// series: [{name, cls, values: [{t (ms), v}]}]. Returns a <figure> with the chart and legend.
export function lineChart({ title, series, yFormat = String, t0, t1, height = 170, id }) {
  const W = 560, H = height, L = 58, R = 12, T = 10, B = 24;
  const all = series.flatMap((se) => se.values.map((p) => p.v)).filter((v) => v != null && isFinite(v));
  const ticksY = niceTicks(0, Math.max(0, ...all), 4);
  const yMax = ticksY[ticksY.length - 1] || 1;
  const ts = series.flatMap((se) => se.values.map((p) => p.t));
  const lo = t0 ?? Math.min(...ts), hi = t1 ?? Math.max(...ts);
  const x = (t) => L + ((t - lo) / ((hi - lo) || 1)) * (W - L - R);
  const y = (v) => H - B - (v / yMax) * (H - T - B);
  const svg = s('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  for (const v of ticksY) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }),
      s('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, yFormat(v)));
  }
  const xt = timeTicks(lo, hi, 5);
  xt.forEach((tk, i) => svg.append(s('text', { x: x(tk.t), y: H - 6, class: 'axis',
    'text-anchor': i === 0 && x(tk.t) < L + 30 ? 'start' : i === xt.length - 1 && x(tk.t) > W - R - 30 ? 'end' : 'middle' }, tk.label)));
  for (const se of series) {
    svg.append(s('path', { d: linePath(se.values, x, y), class: `series ${se.cls || ''}`, dataset: { series: se.name } }));
    // A lone point between gaps would draw nothing: mark every point that has no neighbour.
    se.values.forEach((p, i) => {
      if (p.v == null) return;
      const prev = se.values[i - 1], next = se.values[i + 1];
      if ((!prev || prev.v == null) && (!next || next.v == null)) svg.append(s('circle', { cx: x(p.t), cy: y(p.v), r: 2.5, class: `point ${se.cls || ''}` }));
    });
  }
  // Hover: a guide line and the values at the nearest time.
  const guide = s('line', { y1: T, y2: H - B, class: 'guide', visibility: 'hidden' });
  const readout = h('div', { class: 'readout', hidden: true });
  const overlay = s('rect', { x: L, y: T, width: W - L - R, height: H - T - B, class: 'overlay' });
  svg.append(guide, overlay);
  const times = [...new Set(ts)].sort((a, b) => a - b);
  overlay.addEventListener('mousemove', (ev) => {
    const box = svg.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * W;
    const t = lo + ((px - L) / (W - L - R)) * (hi - lo);
    let best = times[0];
    for (const c of times) if (Math.abs(c - t) < Math.abs(best - t)) best = c;
    guide.setAttribute('x1', x(best)); guide.setAttribute('x2', x(best)); guide.setAttribute('visibility', 'visible');
    readout.hidden = false;
    readout.replaceChildren(h('b', null, new Date(best).toLocaleTimeString()),
      ...series.map((se) => { const p = se.values.find((q) => q.t === best); return h('span', { class: `key ${se.cls || ''}` }, `${se.name}: ${p && p.v != null ? yFormat(p.v) : '–'}`); }));
  });
  overlay.addEventListener('mouseleave', () => { guide.setAttribute('visibility', 'hidden'); readout.hidden = true; });
  const legend = series.length > 1 ? h('div', { class: 'chart-legend' }, series.map((se) => h('span', { class: `key ${se.cls || ''}` }, se.name))) : null;
  return h('figure', { class: 'chart-box', id: id || null }, h('figcaption', null, title, legend), svg, readout);
}
