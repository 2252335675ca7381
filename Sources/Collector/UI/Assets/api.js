// The collector's own JSON APIs (same origin). Errors carry the server's message.
export class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

export async function getJSON(path, params) {
  const url = new URL(path, location.origin);
  if (params) {
    for (const [k, v] of Object.entries(params)) {
      if (v == null || v === '') continue;
      if (Array.isArray(v)) v.forEach((x) => url.searchParams.append(k, x));
      else url.searchParams.set(k, v);
    }
  }
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' } });
  } catch (e) {
    throw new ApiError(`cannot reach the collector at ${location.host} (${e.message}); is it still running?`, 0);
  }
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  if (!res.ok) {
    const msg = body && body.errors && body.errors.length ? body.errors.map((e) => e.msg).join('; ') : text.slice(0, 200);
    throw new ApiError(`${res.status}: ${msg || res.statusText}`, res.status);
  }
  if (body == null) throw new ApiError(`${url.pathname} did not answer JSON`, res.status);
  return { body, text };
}

// Jaeger trace JSON -> the UI's span model.
export function convertTrace(trace) {
  const processes = trace.processes || {};
  const spans = trace.spans.map((sp) => {
    const proc = processes[sp.processID] || { serviceName: '?', tags: [] };
    const refs = sp.references || [];
    const parentRef = refs.find((r) => r.refType === 'CHILD_OF' && r.traceID === sp.traceID) || null;
    const tags = sp.tags || [];
    const tag = (k) => { const t = tags.find((x) => x.key === k); return t ? t.value : undefined; };
    const err = tag('error');
    const kind = tag('span.kind') || '';
    return {
      id: sp.spanID, traceID: sp.traceID, name: sp.operationName, service: proc.serviceName,
      parentID: parentRef ? parentRef.spanID : null, refs, start: sp.startTime, duration: sp.duration,
      tags, logs: sp.logs || [], process: proc, warnings: sp.warnings || [], kind,
      error: err === true || err === 'true' || tag('otel.status_code') === 'ERROR',
      // The sidecar guessed this span's parent (telemetry.inferParent): drawn dashed.
      inferred: tag('meshtrace.parent_inferred') === true || tag('meshtrace.parent_inferred') === 'true',
      children: [], depth: 0, parent: null,
    };
  });
  const byID = new Map(spans.map((sp) => [sp.id, sp]));
  const roots = [];
  for (const sp of spans) {
    const p = sp.parentID && byID.get(sp.parentID);
    if (p && p !== sp) { sp.parent = p; p.children.push(sp); } else roots.push(sp);
  }
  const byStart = (a, b) => a.start - b.start || (a.id < b.id ? -1 : 1);
  roots.sort(byStart);
  // Depth-first order, iteratively (10k-deep chains must not blow the stack).
  const order = [];
  const seen = new Set();
  const stack = roots.slice().reverse();
  while (stack.length) {
    const sp = stack.pop();
    if (seen.has(sp)) continue;
    seen.add(sp);
    sp.depth = sp.parent ? sp.parent.depth + 1 : 0;
    order.push(sp);
    sp.children.sort(byStart);
    for (let i = sp.children.length - 1; i >= 0; i--) stack.push(sp.children[i]);
  }
  let start = Infinity, end = -Infinity;
  for (const sp of spans) { start = Math.min(start, sp.start); end = Math.max(end, sp.start + sp.duration); }
  const services = [...new Set(spans.map((sp) => sp.service))].sort();
  const root = roots[0] || null;
  return { id: trace.traceID, spans: order, byID, roots, start, end, duration: end - start, services, root,
    errors: spans.filter((sp) => sp.error).length, maxDepth: order.reduce((m, sp) => Math.max(m, sp.depth), 0) };
}

// Jaeger's critical path (TracePage/CriticalPath): from the root, follow the last-finishing
// child; on the way back up take the child that finished just before the previous one started.
// Children are clipped to their parent first. Iterative. Returns Map spanID -> [[start, end], ...].
export function criticalPath(model) {
  const out = new Map();
  const root = model.roots.reduce((best, r) => (!best || r.start + r.duration > best.start + best.duration ? r : best), null);
  if (!root) return out;
  const clip = new Map();
  const times = (sp) => {
    let t = clip.get(sp);
    if (t) return t;
    let s = sp.start, e = sp.start + sp.duration;
    if (sp.parent) {
      const p = times(sp.parent);
      s = Math.max(s, p.s); e = Math.min(e, p.e);
    }
    t = { s, e: Math.max(s, e) };
    clip.set(sp, t);
    return t;
  };
  // Parents come before children in DFS order, so times() never recurses deeply.
  for (const sp of model.spans) times(sp);
  // Children sorted by clipped end, newest first; a cursor per span only moves forward because
  // each return to a parent asks for a child that ended before an earlier point.
  const sorted = new Map(), cursor = new Map();
  const kids = (sp) => {
    let l = sorted.get(sp);
    if (!l) {
      const p = clip.get(sp);
      l = sp.children.filter((c) => { const t = clip.get(c); return t.e > p.s && t.s < p.e; })
        .sort((a, b) => clip.get(b).e - clip.get(a).e);
      sorted.set(sp, l);
    }
    return l;
  };
  const push = (sp, a, b) => { if (b <= a) return; let l = out.get(sp.id); if (!l) out.set(sp.id, l = []); l.push([a, b]); };
  let cur = root, returning = null, guard = model.spans.length * 4 + 10;
  while (cur && guard-- > 0) {
    const t = clip.get(cur);
    const children = kids(cur);
    let lfc = null;
    if (returning == null) {
      lfc = children[0] || null;
      cursor.set(cur, 1);
    } else {
      let i = cursor.get(cur) || 0;
      while (i < children.length && clip.get(children[i]).e >= returning) i++;
      lfc = children[i] || null;
      cursor.set(cur, i + 1);
    }
    if (lfc) {
      push(cur, clip.get(lfc).e, returning == null ? t.e : returning);
      cur = lfc; returning = null;
    } else {
      push(cur, t.s, returning == null ? t.e : returning);
      if (!cur.parent) break;
      returning = t.s; cur = cur.parent;
    }
  }
  return out;
}
