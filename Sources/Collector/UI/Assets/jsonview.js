// JSON view of one trace: the API's Jaeger JSON as a collapsible tree with search. Children are
// built only when opened and long arrays open in groups of 100, so a 10,000-span trace is cheap.
import { h } from './dom.js';

const GROUP = 100;
const MAX_MATCHES = 5000;

const isObj = (v) => v !== null && typeof v === 'object';

// Every place the query occurs (a key or a scalar value, case-insensitive): paths of keys/indices.
export function searchJSON(value, query, max = MAX_MATCHES) {
  const q = query.toLowerCase();
  const out = [];
  const stack = [[value, []]];
  while (stack.length && out.length < max) {
    const [v, path] = stack.pop();
    if (isObj(v)) {
      const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
      for (let i = keys.length - 1; i >= 0; i--) {
        const k = keys[i];
        stack.push([v[k], path.concat([k])]);
      }
      if (!Array.isArray(v)) for (const k of keys) if (k.toLowerCase().includes(q)) out.push({ path: path.concat([k]), key: true });
    } else if (String(v).toLowerCase().includes(q)) out.push({ path, key: false });
  }
  // Document order: the stack visits in order, but key hits were pushed with their parent.
  return out.sort((a, b) => comparePaths(a.path, b.path) || (a.key === b.key ? 0 : a.key ? -1 : 1));
}

function comparePaths(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] === b[i]) continue;
    return typeof a[i] === 'number' && typeof b[i] === 'number' ? a[i] - b[i] : String(a[i]) < String(b[i]) ? -1 : 1;
  }
  return a.length - b.length;
}

// The ids of the nodes to open so that `path` shows: each container on the way, and for long
// arrays the group of 100 that holds the index.
export function pathIds(root, path) {
  const ids = [];
  let v = root, id = '$';
  ids.push(id);
  for (const k of path.slice(0, -1)) {
    // A group's id names its array (children()'s `${id}/[start]`); the element's id does not name the group.
    if (Array.isArray(v) && v.length > GROUP) ids.push(`${id}/[${Math.floor(k / GROUP) * GROUP}]`);
    id = `${id}/${k}`;
    ids.push(id);
    v = v[k];
  }
  if (Array.isArray(v) && v.length > GROUP && path.length) ids.push(`${id}/[${Math.floor(path[path.length - 1] / GROUP) * GROUP}]`);
  return ids;
}

// What a closed object is, at a glance: a span's operation, a process's service, a tag's pair.
function preview(v) {
  if (Array.isArray(v)) return '';
  const text = typeof v.operationName === 'string' ? `${v.operationName} · ${v.spanID || ''}`
    : typeof v.serviceName === 'string' ? v.serviceName
      : typeof v.key === 'string' && 'value' in v && !isObj(v.value) ? `${v.key} = ${v.value}` : '';
  return text ? h('span', { class: 'hint' }, ` ${text}`) : '';
}

export function mountJSON(container, env) {
  const root = env.raw;
  const open = new Set(['$', '$/spans', '$/processes']);
  let query = '', matches = [], current = -1;
  const input = h('input', { type: 'search', id: 'json-find', placeholder: 'Search keys and values…', spellcheck: 'false', 'aria-label': 'Search the JSON' });
  const count = h('span', { class: 'find-count', id: 'json-count' });
  const prev = h('button', { type: 'button', class: 'btn ghost', id: 'json-prev', title: 'Previous match (Shift+Enter)' }, '↑');
  const next = h('button', { type: 'button', class: 'btn ghost', id: 'json-next', title: 'Next match (Enter)' }, '↓');
  const expand = h('button', { type: 'button', class: 'btn ghost', id: 'json-collapse' }, 'Collapse all');
  env.tools.replaceChildren(input, count, prev, next, expand);
  const tree = h('div', { class: 'jv', id: 'json-view' });
  const view = h('div', { class: 'view-body', tabindex: 0 }, tree);
  container.replaceChildren(view);

  const target = () => (current >= 0 ? matches[current] : null);
  // A node's id is its path; groups of a long array add `[start]` ids of their own.
  const pathId = (path) => ['$', ...path].join('/');

  function scalar(v, hit) {
    const text = typeof v === 'string' ? JSON.stringify(v) : String(v);
    const cls = typeof v === 'string' ? 'str' : typeof v === 'number' ? 'num' : 'lit';
    return h('span', { class: cls }, hit ? highlight(text) : text);
  }
  function highlight(text) {
    if (!query) return text;
    const lower = text.toLowerCase(), q = query.toLowerCase();
    const parts = [];
    let at = 0, i;
    while ((i = lower.indexOf(q, at)) >= 0) { parts.push(text.slice(at, i), h('mark', null, text.slice(i, i + q.length))); at = i + q.length; }
    parts.push(text.slice(at));
    return parts;
  }

  // One entry: "key: value" for scalars, a toggle and a summary for containers.
  function entry(key, v, id, path) {
    const keyEl = key === null ? null : h('span', { class: 'k' }, typeof key === 'number' ? String(key) : highlight(JSON.stringify(key)), ': ');
    const t = target();
    const li = h('li', { dataset: { path: id } });
    if (t && pathId(t.path) === id) li.classList.add('current');
    if (!isObj(v)) { li.append(keyEl || '', scalar(v, !!query), ''); return li; }
    const n = Array.isArray(v) ? v.length : Object.keys(v).length;
    const isOpen = open.has(id);
    const tw = h('button', { type: 'button', class: 'tw', 'aria-expanded': String(isOpen), 'aria-label': isOpen ? 'Collapse' : 'Expand' }, isOpen ? '▾' : '▸');
    const summary = h('span', { class: 'sum' }, Array.isArray(v) ? `[${n} item${n === 1 ? '' : 's'}]` : `{${n} key${n === 1 ? '' : 's'}}`);
    li.append(tw, keyEl || '', summary, preview(v));
    if (isOpen) li.append(children(v, id, path));
    tw.addEventListener('click', () => { if (isOpen) open.delete(id); else open.add(id); li.replaceWith(entry(key, v, id, path)); });
    return li;
  }

  function children(v, id, path) {
    const ul = h('ul');
    if (Array.isArray(v) && v.length > GROUP) {
      for (let g = 0; g < v.length; g += GROUP) {
        const gid = `${id}/[${g}]`, isOpen = open.has(gid);
        const li = h('li', { dataset: { path: gid } });
        const tw = h('button', { type: 'button', class: 'tw', 'aria-expanded': String(isOpen) }, isOpen ? '▾' : '▸');
        li.append(tw, h('span', { class: 'sum' }, `[${g} … ${Math.min(v.length, g + GROUP) - 1}]`));
        if (isOpen) {
          const inner = h('ul');
          for (let i = g; i < Math.min(v.length, g + GROUP); i++) inner.append(entry(i, v[i], `${id}/${i}`, path.concat([i])));
          li.append(inner);
        }
        tw.addEventListener('click', () => { if (open.has(gid)) open.delete(gid); else open.add(gid); render(); });
        ul.append(li);
      }
      return ul;
    }
    const keys = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
    for (const k of keys) ul.append(entry(k, v[k], `${id}/${k}`, path.concat([k])));
    return ul;
  }

  function render() {
    tree.replaceChildren(h('ul', null, entry(null, root, '$', [])));
  }

  function go(i) {
    if (!matches.length) return;
    current = (i + matches.length) % matches.length;
    for (const id of pathIds(root, matches[current].path)) open.add(id);
    render();
    count.textContent = `${current + 1} of ${matches.length}${matches.length >= MAX_MATCHES ? '+' : ''}`;
    const el = tree.querySelector('li.current');
    if (el) el.scrollIntoView({ block: 'center' });
  }

  function runSearch() {
    query = input.value.trim();
    matches = query ? searchJSON(root, query) : [];
    current = -1;
    if (!query) { count.textContent = ''; render(); return; }
    if (!matches.length) { count.textContent = 'no matches'; render(); return; }
    go(0);
  }
  let timer = 0;
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(runSearch, 200); });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); clearTimeout(timer); if (input.value.trim() !== query) runSearch(); else go(current + (e.shiftKey ? -1 : 1)); }
  });
  prev.addEventListener('click', () => go(current - 1));
  next.addEventListener('click', () => go(current + 1));
  expand.addEventListener('click', () => { open.clear(); open.add('$'); render(); });
  render();
  return { focusTarget: input, focus() { view.focus(); } };
}
