// Tiny DOM helpers. Every dynamic value becomes a text node or an attribute: never HTML.
const SVG_NS = 'http://www.w3.org/2000/svg';

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.setAttribute('class', v);
    else if (k === 'style') Object.assign(el.style, v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  return append(el, children);
}

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  return append(el, children);
}

export function state(kind, title, detail) {
  return h('div', { class: 'state ' + kind, role: kind === 'error' ? 'alert' : 'status' },
    h('strong', null, title), detail ? h('p', null, detail) : null);
}

// Durations arrive in microseconds (Jaeger JSON).
export function fmtDuration(us) {
  if (us == null || !isFinite(us)) return '–';
  if (us < 1000) return `${Math.round(us)}µs`;
  if (us < 1e6) return `${+(us / 1000).toFixed(us < 1e4 ? 2 : 1)}ms`;
  if (us < 60e6) return `${+(us / 1e6).toFixed(2)}s`;
  return `${Math.floor(us / 60e6)}m ${Math.round((us % 60e6) / 1e6)}s`;
}

export function fmtMs(ms) { return fmtDuration(ms * 1000); }

export function fmtTime(us) {
  const d = new Date(us / 1000);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtAgo(us) {
  const s = Math.max(0, (Date.now() * 1000 - us) / 1e6);
  if (s < 60) return `${Math.round(s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export function fmtNumber(n, digits = 2) {
  if (!isFinite(n)) return '–';
  if (Math.abs(n) >= 100) return String(Math.round(n));
  return String(+n.toFixed(digits));
}

// One colour per service, stable for the session: assigned in sorted order of the known services.
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948',
  '#ff9da7', '#9c755f', '#6b8e23', '#d37295', '#8cd17d', '#499894', '#bab0ac', '#86bcb6'];
const colours = new Map();
export function registerServices(names) {
  for (const n of [...names].sort()) serviceColour(n);
}
export function serviceColour(name) {
  let c = colours.get(name);
  if (!c) {
    c = PALETTE[colours.size % PALETTE.length];
    colours.set(name, c);
  }
  return c;
}
