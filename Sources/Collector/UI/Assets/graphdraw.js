// Draws a service (or operation) graph as SVG from the layered layout: shapes by node type as the
// legend shows them, edges coloured by Kiali health, a label choice on edges, and traffic dots
// whose rate follows the edge's rps and whose share of red follows its error rate.
import { s, fmtMs, fmtNumber, serviceColour } from './dom.js';
import { layered } from './layered.js';

export const HEALTH_LABEL = { healthy: 'Healthy', degraded: 'Degraded', failure: 'Failure', idle: 'Idle' };
const R = 24;
// Dots at once over the whole graph: past this they are thinned evenly (a 100-service mesh must
// not spend its frames animating).
const MAX_DOTS = 240;

export const EDGE_LABELS = [['rps', 'Request rate'], ['errors', 'Error %'], ['p95', 'p95 latency'], ['none', 'No labels']];

export function edgeLabel(e, mode) {
  if (e.label !== undefined) return mode === 'none' ? '' : e.label;
  switch (mode) {
    case 'rps': return `${fmtNumber(e.rps, 2)} rps`;
    case 'errors': return `${fmtNumber(e.errorRate * 100, 1)}%`;
    case 'p95': return e.p95Ms === undefined ? '' : `p95 ${fmtMs(e.p95Ms)}`;
    default: return '';
  }
}

// Dots per second on an edge, relative to the busiest edge (maxRps): from 0.25/s to 3/s by the
// square root of the share, so a 30x difference in rate is a 5x difference in dots and the
// quietest edge still moves. A log of the absolute rate (tried first) drew 0.007 and 0.1 rps,
// the generated mesh's range over 5 minutes, as the same single dot.
export function dotRate(rps, maxRps) {
  if (!(rps > 0) || !(maxRps > 0)) return 0;
  return 0.25 + 2.75 * Math.sqrt(Math.min(1, rps / maxRps));
}

// The shape of a node type, shared by the graph and its legend.
export function nodeShape(type, r = R) {
  if (type === 'gateway') return s('polygon', { points: `0,${-r - 4} ${r + 4},0 0,${r + 4} ${-r - 4},0`, class: 'shape' });
  if (type === 'external') return s('rect', { x: -r, y: -r, width: 2 * r, height: 2 * r, rx: r / 3, class: 'shape' });
  if (type === 'operation') return s('rect', { x: -r * 2, y: -r * 0.8, width: r * 4, height: r * 1.6, rx: 6, class: 'shape' });
  return s('circle', { r, class: 'shape' });
}

const truncate = (text, n) => (text.length > n ? text.slice(0, n - 1) + '…' : text);

// graph: {nodes: [{id, type, health, rps, errorRate, requests, label, sub}], edges: [{source, target, health, rps, errorRate, p95Ms}]}
// opts: {selection, labels, animate, onSelect, kind: 'service'|'operation'}
export function drawGraph(graph, opts) {
  const kindOp = opts.kind === 'operation';
  const labelOf = (n) => truncate(n.label || n.id, kindOp ? 30 : 48);
  const lay = layered(graph.nodes.map((n) => ({
    id: n.id, height: kindOp ? 2 * R + 34 : 2 * R + 44,
    width: Math.max(kindOp ? R * 4 : 2 * R + 10, labelOf(n).length * 7.4 + 8, (n.sub || '').length * 6.4 + 8),
  })), graph.edges, { layerGap: kindOp ? 110 : 130, nodeGap: 22, margin: 50 });
  const W = Math.max(lay.width, 300), H = Math.max(lay.height, 200);
  const svg = s('svg', { class: 'graph', id: opts.id || 'graph-svg', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img',
    'aria-label': kindOp ? 'Operation dependency graph' : 'Service graph', dataset: { layers: String(lay.layers), crossings: String(lay.crossings), w: String(W), h: String(H) } });
  const defs = s('defs');
  for (const hl of ['healthy', 'degraded', 'failure', 'idle']) {
    defs.append(s('marker', { id: `arrow-${hl}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
      s('path', { d: 'M0,0 L10,5 L0,10 z', class: `arrowhead ${hl}` })));
  }
  svg.append(defs);
  const edgeLayer = s('g', { class: 'edges' }), dotLayer = s('g', { class: 'traffic' }), labelLayer = s('g', { class: 'labels' }), nodeLayer = s('g', { class: 'nodes' });
  svg.append(edgeLayer, dotLayer, nodeLayer, labelLayer);
  const activate = (el, sel, label) => {
    el.setAttribute('tabindex', '0');
    el.setAttribute('role', 'button');
    el.setAttribute('aria-label', label);
    el.addEventListener('click', (ev) => { ev.stopPropagation(); opts.onSelect(sel); });
    el.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); opts.onSelect(sel); } });
  };
  const byId = new Map(graph.nodes.map((n) => [n.id, n]));
  const halfW = (id) => (kindOp ? R * 2 : byId.get(id) && byId.get(id).type === 'gateway' ? R + 4 : R);

  const maxRps = graph.edges.reduce((a, e) => Math.max(a, e.rps || 0), 0);
  const totalRate = graph.edges.reduce((a, e) => a + dotRate(e.rps, maxRps), 0);
  const thin = opts.animate ? Math.min(1, MAX_DOTS / Math.max(1, totalRate * 2.4)) : 0;
  const sel = opts.selection;
  const placed = [];
  for (const le of lay.edges) {
    const e = le.edge;
    const { d, mx, my, length } = edgePath(le, halfW(le.source), halfW(le.target));
    const selected = sel && sel.from === e.source && sel.to === e.target;
    const width = 1.6 + Math.min(4, Math.log10(1 + (e.rps || 0)) * 2.5);
    const g = s('g', { class: `edge ${e.health}${selected ? ' selected' : ''}`,
      dataset: { source: e.source, target: e.target, health: e.health, rps: String(e.rps), requests: String(e.requests),
        errorRate: String(e.errorRate), p95: String(e.p95Ms) } },
    s('path', { d, class: 'hit' }),
    s('path', { d, class: 'line', 'marker-end': `url(#arrow-${e.health})`, style: { strokeWidth: `${width}px` } }),
    s('title', null, `${byId.get(e.source)?.label || e.source} → ${byId.get(e.target)?.label || e.target}\n${fmtNumber(e.rps, 3)} req/s, ${fmtNumber(e.errorRate * 100, 1)}% errors${e.p95Ms === undefined ? '' : `, p95 ${fmtMs(e.p95Ms)}`}`));
    activate(g, { from: e.source, to: e.target }, `Edge ${e.source} to ${e.target}`);
    edgeLayer.append(g);
    if (thin > 0 && e.rps > 0) addDots(dotLayer, g, d, length, e, dotRate(e.rps, maxRps) * thin);
    const text = edgeLabel(e, opts.labels);
    if (text) {
      const wText = text.length * 6.2 + 10;
      const at = placeLabel(placed, mx, my, wText, 18);
      labelLayer.append(s('g', { class: `edge-label ${e.health}`, transform: `translate(${at.x},${at.y})` },
        s('rect', { x: -wText / 2, y: -9, width: wText, height: 18, rx: 4 }),
        s('text', { 'text-anchor': 'middle', y: 4 }, text)));
    }
  }

  for (const n of graph.nodes) {
    const p = lay.nodes.get(n.id);
    const selected = sel && sel.node === n.id;
    const g = s('g', { class: `node ${n.type} ${n.health}${selected ? ' selected' : ''}${n.focus ? ' focus' : ''}`, transform: `translate(${p.x},${p.y})`,
      dataset: { node: n.id, type: n.type, health: n.health, rps: String(n.rps), layer: String(p.layer) } });
    g.append(kindOp ? s('rect', { x: -R * 2 - 8, y: -R * 0.8 - 8, width: R * 4 + 16, height: R * 1.6 + 16, rx: 10, class: 'halo' }) : s('circle', { r: R + 10, class: 'halo' }),
      nodeShape(n.type));
    const colour = n.service || (n.type === 'service' || n.type === 'gateway' ? n.id : null);
    if (colour) g.append(s('circle', { r: kindOp ? 6 : 8, cx: kindOp ? -R * 2 + 12 : 0, class: 'svc-dot', style: { fill: serviceColour(colour) } }));
    if (n.type === 'unknown') g.append(s('text', { class: 'glyph', 'text-anchor': 'middle', y: 6 }, '?'));
    if (n.type === 'external') g.append(s('text', { class: 'glyph', 'text-anchor': 'middle', y: 6 }, '↗'));
    if (kindOp) g.append(s('text', { class: 'op-service', x: -R * 2 + 22, y: 4 }, truncate(n.service, 11)));
    const labelY = kindOp ? R * 0.8 + 16 : R + 18;
    g.append(s('text', { class: 'node-name', 'text-anchor': 'middle', y: labelY }, labelOf(n)),
      s('text', { class: 'node-rate', 'text-anchor': 'middle', y: labelY + 15 }, n.sub || ''),
      s('title', null, `${n.type} ${n.label || n.id}: ${HEALTH_LABEL[n.health] || n.health}`));
    activate(g, { node: n.id }, `${n.type} ${n.label || n.id}`);
    nodeLayer.append(g);
  }
  svg.addEventListener('click', () => opts.onSelect(null));
  return svg;
}

// A smooth path through the layout's points, from the source's edge to the target's; its middle
// (for the label) and an estimate of its length (for the dots' speed).
function edgePath(le, rs, rt) {
  const pts = le.points;
  if (le.self) {
    const a = pts[0];
    return { d: `M${a.x - 10},${a.y - R + 2} C${a.x - 50},${a.y - R - 60} ${a.x + 50},${a.y - R - 60} ${a.x + 10},${a.y - R + 2}`, mx: a.x, my: a.y - R - 48, length: 160 };
  }
  const dir = pts[pts.length - 1].x >= pts[0].x ? 1 : -1;
  // A back edge runs below the forward ones between the same columns, so a↔b stays two lines.
  const lift = le.reversed ? 10 : 0;
  const p = pts.map((q, i) => ({ x: q.x + (i === 0 ? dir * rs : i === pts.length - 1 ? -dir * (rt + 2) : 0), y: q.y + (i === 0 || i === pts.length - 1 ? lift / 2 : lift) }));
  let d = `M${p[0].x},${p[0].y}`, length = 0;
  for (let i = 1; i < p.length; i++) {
    const a = p[i - 1], b = p[i], dx = (b.x - a.x) / 2;
    d += ` C${a.x + dx},${a.y} ${b.x - dx},${b.y} ${b.x},${b.y}`;
    length += Math.hypot(b.x - a.x, b.y - a.y);
  }
  // The label sits in the gap after the source's column, where there are no nodes.
  return { d, mx: (p[0].x + p[1].x) / 2, my: (p[0].y + p[1].y) / 2, length };
}

// Shows the drawing at `scale`, or (null) as large as fits the box, but never below `min` (a
// bigger graph scrolls rather than shrinking past readable). Returns the scale used.
export function scaleGraph(svg, box, scale, min = 0.7) {
  const W = +svg.dataset.w, H = +svg.dataset.h;
  const fit = Math.min(1, (box.clientWidth - 24) / W, (box.clientHeight - 24) / H);
  const used = scale == null ? Math.max(min, Math.min(fit, 1)) : scale;
  svg.setAttribute('width', String(Math.round(W * used)));
  svg.setAttribute('height', String(Math.round(H * used)));
  return used;
}

// A spot for an edge label near (x, y) that no label placed before covers: the first free one
// of a few steps up and down (a busy node's labels fan out instead of stacking).
function placeLabel(placed, x, y, w, h) {
  const free = (cy) => placed.every((b) => Math.abs(b.x - x) * 2 >= b.w + w || Math.abs(b.y - cy) * 2 >= b.h + h);
  let at = y;
  for (const dy of [0, 1, -1, 2, -2, 3, -3]) {
    if (free(y + dy * (h + 2))) { at = y + dy * (h + 2); break; }
  }
  placed.push({ x, y: at, w, h });
  return { x, y: at };
}

// Dots that travel the edge at a steady speed; how many start per second follows the rate, and
// the share of red ones the error rate (at least one when there are errors at all).
function addDots(layer, edgeGroup, d, length, e, perSecond) {
  const dur = Math.max(1.2, length / 140);
  const count = Math.max(1, Math.round(perSecond * dur));
  const red = e.errorRate > 0 ? Math.max(1, Math.round(count * e.errorRate)) : 0;
  edgeGroup.dataset.dots = String(count);
  // What a person sees: dots passing a point per second (count over the travel time).
  edgeGroup.dataset.dotRate = (count / dur).toFixed(3);
  edgeGroup.dataset.redDots = String(red);
  for (let i = 0; i < count; i++) {
    // Spread the red ones through the stream rather than bunching them.
    const isRed = red > 0 && Math.floor((i * red) / count) !== Math.floor(((i + 1) * red) / count);
    const dot = s('circle', { r: 3, class: 'dot' + (isRed ? ' err' : '') });
    // A negative begin starts each dot part-way along, so the stream is already flowing.
    dot.append(s('animateMotion', { dur: `${dur.toFixed(2)}s`, begin: `${(-(i * dur) / count).toFixed(2)}s`, repeatCount: 'indefinite', path: d }));
    layer.append(dot);
  }
}
