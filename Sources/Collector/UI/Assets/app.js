// Meshtrace UI: a tiny router over history.pushState. Paths match Jaeger UI's where it has
// the same view (/search?service=…, /trace/{id}), so shared links keep working.
import { state, registerServices } from './dom.js';
import { getJSON } from './api.js';
import { renderSearch } from './search.js';
import { renderTrace } from './trace.js';
import { renderGraph } from './graph.js';
import { renderHealth } from './health.js';
import { renderMonitor } from './monitor.js';
import { renderCompare } from './compare.js';

const app = document.getElementById('app');
let cleanup = null;
let ctx = null;
let generation = 0;

const routes = [
  [/^\/(?:search)?\/?$/, (root, params, c) => renderSearch(root, params, c), 'search'],
  // Jaeger's compare URL: /trace/{A}...{B}.
  [/^\/trace\/([^/.]+)\.\.\.([^/.]+)\/?$/, (root, params, c, a, b) => renderCompare(root, params, c, decodeURIComponent(a), decodeURIComponent(b)), 'compare'],
  [/^\/trace\/([^/]+)\/?$/, (root, params, c, id) => renderTrace(root, params, c, decodeURIComponent(id)), 'trace'],
  [/^\/graph\/?$/, (root, params, c) => renderGraph(root, params, c), 'graph'],
  [/^\/health\/?$/, (root, params, c) => renderHealth(root, params, c), 'health'],
  [/^\/monitor\/?$/, (root, params, c) => renderMonitor(root, params, c), 'monitor'],
];

async function route() {
  const gen = ++generation;
  if (cleanup) { try { cleanup(); } catch { /* ignore */ } cleanup = null; }
  const params = new URLSearchParams(location.search);
  ctx = { navigate, focusTarget: null, onKey: null };
  for (const [re, render, name] of routes) {
    const m = re.exec(location.pathname);
    if (!m) continue;
    document.querySelectorAll('[data-nav]').forEach((a) => {
      if (a.dataset.nav === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
    });
    document.title = `Meshtrace · ${name === 'trace' ? `trace ${m[1].slice(0, 12)}` : name === 'compare' ? `compare ${m[1].slice(0, 8)}…${m[2].slice(0, 8)}` : name}`;
    try {
      const c = await render(app, params, ctx, m[1], m[2]);
      if (gen === generation) cleanup = c || null; else if (c) c();
    } catch (e) {
      console.error(e);
      app.replaceChildren(state('error', 'Something went wrong while drawing this page', String(e && e.message || e)));
    }
    return;
  }
  app.replaceChildren(state('empty', `No page at ${location.pathname}`, 'Try Search or Service graph in the top bar.'));
}

export function navigate(url, replace = false) {
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  route();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);

// Theme: explicit choice persisted, else the system preference.
const THEME_KEY = 'meshtrace.theme';
const themeBtn = document.getElementById('theme-toggle');
function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  themeBtn.textContent = theme === 'dark' ? 'Light theme' : 'Dark theme';
  themeBtn.setAttribute('aria-pressed', String(theme === 'dark'));
}
function toggleTheme() {
  const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
  try { localStorage.setItem(THEME_KEY, next); } catch { /* private mode */ }
  applyTheme(next);
}
let saved = null;
try { saved = localStorage.getItem(THEME_KEY); } catch { /* private mode */ }
applyTheme(saved || (matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));
themeBtn.addEventListener('click', toggleTheme);

// Keyboard: "/" focuses the view's main input, "t" switches theme; views handle the rest.
document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = e.target.closest && e.target.closest('input, select, textarea, [contenteditable]');
  if (e.key === '/' && !typing && ctx && ctx.focusTarget) { e.preventDefault(); ctx.focusTarget.focus(); return; }
  if (typing) return;
  if (e.key === 't') { toggleTheme(); return; }
  if (ctx && ctx.onKey && ctx.onKey(e)) e.preventDefault();
});

if (location.pathname === '/') history.replaceState(null, '', '/search' + location.search);
// Colours follow the sorted list of known services, so a service looks the same on every page.
getJSON('/api/services').then(({ body }) => registerServices(body.data || [])).catch(() => {}).finally(route);
