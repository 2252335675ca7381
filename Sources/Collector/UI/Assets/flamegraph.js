// Flame graph of one trace, drawn root on top (an icicle): width is time spent and depth is the
// call stack. As in a profiler's flame graph, a frame's children are packed left to right in the
// order they started, each as wide as its duration; what is left of the frame is its self time.
// Concurrent children (together longer than their parent) share the parent's width in proportion.
// Click a frame to zoom to it (its callers stay above, faded); "Reset zoom" goes back.
import { h, s, fmtDuration, serviceColour } from './dom.js';
import { selfTimes } from './tracestats.js';

const FRAME_H = 18;
// Frames narrower than this many pixels are not drawn (a sub-pixel sliver); their time still
// shows in their parent's width.
const MIN_PX = 0.6;

// The frames to draw, `width` pixels wide, zoomed on `focus` (null: the whole trace): its
// ancestors full width, then it and its descendants packed as above. Iterative (deep traces).
export function frames(model, focus, width) {
  const out = [];
  let base = 0;
  if (focus) {
    const chain = [];
    for (let p = focus.parent; p; p = p.parent) chain.push(p);
    chain.reverse().forEach((p, i) => out.push({ sp: p, x: 0, w: width, depth: i, ancestor: true }));
    base = chain.length;
  }
  const byStart = (a, b) => a.start - b.start || (a.id < b.id ? -1 : 1);
  let skipped = 0;
  const stack = [];
  const pack = (spans, x, w, total, depth) => {
    const scale = w / Math.max(total, spans.reduce((n, c) => n + c.duration, 0) || 1);
    let at = x;
    for (const c of spans.slice().sort(byStart)) {
      const cw = c.duration * scale;
      if (cw < MIN_PX) skipped++; else stack.push({ sp: c, x: at, w: cw, depth });
      at += cw;
    }
  };
  if (focus) stack.push({ sp: focus, x: 0, w: width, depth: base });
  else pack(model.roots, 0, width, 0, 0);
  while (stack.length) {
    const f = stack.pop();
    out.push({ ...f, ancestor: false });
    if (f.sp.children.length) pack(f.sp.children, f.x, f.w, f.sp.duration, f.depth + 1);
  }
  return { frames: out, skipped };
}

export function mountFlamegraph(container, env) {
  const { model } = env;
  const self = selfTimes(model);
  let focus = null;
  const reset = h('button', { type: 'button', class: 'btn', id: 'flame-reset', disabled: true }, 'Reset zoom');
  const where = h('span', { class: 'muted', id: 'flame-where' });
  env.tools.replaceChildren(reset, where);
  const canvas = h('div', { class: 'flame', id: 'flamegraph' });
  const view = h('div', { class: 'view-body', tabindex: 0 }, canvas);
  container.replaceChildren(view);

  function draw() {
    // The drawing is as wide as the view (less the canvas' padding): text is never stretched.
    const W = Math.max(300, (canvas.clientWidth || 1224) - 24);
    const { frames: list, skipped } = frames(model, focus, W);
    const depth = list.reduce((m, f) => Math.max(m, f.depth), 0) + 1;
    const svg = s('svg', { viewBox: `0 0 ${W} ${depth * FRAME_H}`, width: W, height: depth * FRAME_H, role: 'img',
      'aria-label': 'Flame graph: width is time spent, depth is the call stack', id: 'flame-svg' });
    // One listener for every frame (thousands of them), and the hover text on demand.
    const byIndex = list;
    for (let i = 0; i < list.length; i++) {
      const { sp, x, w, depth: d, ancestor } = list[i];
      const g = s('g', { class: 'frame' + (sp.error ? ' error' : '') + (ancestor ? ' faded' : ''), transform: `translate(${x.toFixed(2)},${d * FRAME_H})`,
        dataset: { spanId: sp.id, depth: String(d), i: String(i) } },
      s('rect', { width: Math.max(w, MIN_PX).toFixed(2), height: FRAME_H - 1, rx: 1.5, style: { fill: serviceColour(sp.service) } }));
      const chars = Math.floor((w - 6) / 6.6);
      if (chars >= 4) {
        const label = `${sp.service}: ${sp.name}`;
        g.append(s('text', { x: 3, y: 13 }, label.length > chars ? label.slice(0, chars - 1) + '…' : label));
      }
      svg.append(g);
    }
    const frameOf = (ev) => { const g = ev.target.closest('g.frame'); return g ? byIndex[+g.dataset.i] : null; };
    svg.addEventListener('click', (ev) => {
      const f = frameOf(ev);
      if (!f) return;
      zoom(f.ancestor && !f.sp.parent ? null : f.sp);
      env.select(f.sp);
    });
    svg.addEventListener('mouseover', (ev) => {
      const f = frameOf(ev);
      if (!f) return;
      const g = ev.target.closest('g.frame');
      if (!g.querySelector('title')) {
        g.append(s('title', null, `${f.sp.service}: ${f.sp.name}\n${fmtDuration(f.sp.duration)} (self ${fmtDuration(self.get(f.sp))})${f.sp.error ? '\nerror' : ''}`));
      }
    });
    canvas.replaceChildren(svg);
    reset.disabled = !focus;
    where.textContent = (focus ? `Zoomed to ${focus.service}: ${focus.name} (${fmtDuration(focus.duration)}) · ` : '')
      + `${list.length} frames${skipped ? `, ${skipped} too narrow to draw at this zoom` : ''} · width is time spent; click a frame to zoom`;
  }

  function zoom(sp) { focus = sp; draw(); }
  reset.addEventListener('click', () => zoom(null));
  let raf = 0;
  const onResize = () => { if (!raf) raf = requestAnimationFrame(() => { raf = 0; draw(); }); };
  window.addEventListener('resize', onResize);
  draw();
  return {
    onKey: (e) => { if (e.key === 'Backspace' || e.key === 'u') { zoom(focus && focus.parent ? focus.parent : null); return true; } return false; },
    focus() { view.focus(); },
    destroy() { window.removeEventListener('resize', onResize); },
  };
}
