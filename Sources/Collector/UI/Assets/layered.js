// Layered (Sugiyama-style) graph layout, left to right, as dagre and Kiali's default draw it:
// 1. break cycles (greedy feedback arc set, Eades–Lin–Smyth), 2. layers by longest path,
// 3. a dummy node wherever an edge skips layers, 4. order each layer to reduce crossings
// (barycenter sweeps down and up, then adjacent swaps, keeping the best order seen),
// 5. place each layer's nodes as near the mean of their neighbours as their order and spacing
// allow (an exact least-squares placement: pool-adjacent-violators), 6. edges as polylines
// through their dummies. Pure: no DOM, so node tests it (tests/js/layered.test.mjs).

// nodes: [{id, width, height}]; edges: [{source, target}]. Returns positions of node centres
// and edge points, in a box starting at (margin, margin).
export function layered(nodes, edges, opts = {}) {
  const o = { layerGap: 90, nodeGap: 24, dummyGap: 8, dummySize: 10, margin: 20, sweeps: 24, placeIterations: 12, ...opts };
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const N = nodes.length;
  const selfLoops = [], pairs = new Map();
  for (const e of edges) {
    const s = index.get(e.source), t = index.get(e.target);
    if (s === undefined || t === undefined) continue;
    if (s === t) { selfLoops.push(e); continue; }
    const key = s + ',' + t;
    if (!pairs.has(key)) pairs.set(key, { s, t, edges: [] });
    pairs.get(key).edges.push(e);
  }
  const links = [...pairs.values()];
  const order = feedbackOrder(N, links);
  const posInOrder = new Array(N);
  order.forEach((v, i) => { posInOrder[v] = i; });
  // Edges against the order are drawn reversed for layering.
  const dag = links.map((l) => (posInOrder[l.s] < posInOrder[l.t] ? { ...l, u: l.s, v: l.t, reversed: false } : { ...l, u: l.t, v: l.s, reversed: true }));
  const layer = assignLayers(N, dag, order);

  // Graph with dummies: vertices 0..N-1 real, then dummies.
  const size = nodes.map((n) => ({ w: n.width || 0, h: n.height || 0 }));
  const vLayer = layer.slice();
  const chains = [];
  const succ = [], pred = [];
  const addV = (l) => { vLayer.push(l); size.push({ w: 0, h: o.dummySize }); return vLayer.length - 1; };
  const link = (a, b) => { (succ[a] ||= []).push(b); (pred[b] ||= []).push(a); };
  for (const d of dag) {
    const chain = [d.u];
    for (let l = layer[d.u] + 1; l < layer[d.v]; l++) chain.push(addV(l));
    chain.push(d.v);
    for (let i = 0; i + 1 < chain.length; i++) link(chain[i], chain[i + 1]);
    chains.push({ link: d, chain });
  }
  const V = vLayer.length;
  for (let v = 0; v < V; v++) { succ[v] ||= []; pred[v] ||= []; }
  const layerCount = N ? Math.max(...layer) + 1 : 0;
  let layers = Array.from({ length: layerCount }, () => []);
  // Initial order: depth-first from the first layer, so related nodes start near each other.
  const seen = new Uint8Array(V);
  const visit = (start) => {
    const stack = [start];
    while (stack.length) {
      const v = stack.pop();
      if (seen[v]) continue;
      seen[v] = 1;
      layers[vLayer[v]].push(v);
      for (let i = succ[v].length - 1; i >= 0; i--) if (!seen[succ[v][i]]) stack.push(succ[v][i]);
    }
  };
  for (const v of order) if (layer[v] === 0) visit(v);
  for (const v of order) visit(v);
  for (let v = N; v < V; v++) visit(v);

  layers = reduceCrossings(layers, succ, pred, o.sweeps, true);
  const y = placeLayers(layers, succ, pred, size, o);

  // Columns: each as wide as its widest node.
  const colW = layers.map((l) => Math.max(0, ...l.map((v) => size[v].w)));
  const colX = [];
  let x = o.margin;
  for (let l = 0; l < layerCount; l++) {
    x += l === 0 ? colW[0] / 2 : colW[l - 1] / 2 + o.layerGap + colW[l] / 2;
    colX.push(x);
  }
  let minY = Infinity, maxY = -Infinity;
  for (let v = 0; v < V; v++) { minY = Math.min(minY, y[v] - size[v].h / 2); maxY = Math.max(maxY, y[v] + size[v].h / 2); }
  const shift = V ? o.margin - minY : 0;
  const pos = new Map();
  const orderIn = new Map();
  layers.forEach((l) => l.forEach((v, i) => orderIn.set(v, i)));
  nodes.forEach((n, v) => pos.set(n.id, { x: colX[layer[v]], y: y[v] + shift, layer: layer[v], order: orderIn.get(v) }));
  const outEdges = [];
  for (const { link: d, chain } of chains) {
    let pts = chain.map((v) => ({ x: colX[vLayer[v]], y: y[v] + shift }));
    if (d.reversed) pts = pts.reverse();
    for (const e of d.edges) outEdges.push({ source: e.source, target: e.target, points: pts, reversed: d.reversed, edge: e });
  }
  for (const e of selfLoops) {
    const p = pos.get(e.source);
    outEdges.push({ source: e.source, target: e.target, points: [{ x: p.x, y: p.y }], self: true, edge: e });
  }
  const width = layerCount ? colX[layerCount - 1] + colW[layerCount - 1] / 2 + o.margin : 2 * o.margin;
  const height = V ? maxY - minY + 2 * o.margin : 2 * o.margin;
  return { nodes: pos, edges: outEdges, width, height, layers: layerCount, crossings: totalCrossings(layers, succ) };
}

// Eades–Lin–Smyth: repeatedly take sinks to the end and sources to the front, else the node
// with the largest out-minus-in degree. Edges pointing backwards in the result form a small
// feedback arc set. Ties go to the input order, so the layout is deterministic.
export function feedbackOrder(N, links) {
  const out = Array.from({ length: N }, () => new Set()), inn = Array.from({ length: N }, () => new Set());
  for (const l of links) { out[l.s].add(l.t); inn[l.t].add(l.s); }
  const alive = new Set(Array.from({ length: N }, (_, i) => i));
  const front = [], back = [];
  const remove = (v) => {
    alive.delete(v);
    for (const t of out[v]) inn[t].delete(v);
    for (const s of inn[v]) out[s].delete(v);
  };
  while (alive.size) {
    let changed = true;
    while (changed) {
      changed = false;
      for (const v of alive) {
        if (out[v].size === 0) { back.push(v); remove(v); changed = true; } else if (inn[v].size === 0) { front.push(v); remove(v); changed = true; }
      }
    }
    if (!alive.size) break;
    let best = -1, bestScore = -Infinity;
    for (const v of alive) { const sc = out[v].size - inn[v].size; if (sc > bestScore) { best = v; bestScore = sc; } }
    front.push(best); remove(best);
  }
  return front.concat(back.reverse());
}

// Longest path from the sources, then sources pulled right next to their first callee (a lone
// caller of a deep service should not stretch an edge across the whole graph).
export function assignLayers(N, dag, order) {
  const layer = new Array(N).fill(0);
  const succ = Array.from({ length: N }, () => []), indeg = new Array(N).fill(0);
  for (const d of dag) { succ[d.u].push(d.v); indeg[d.v]++; }
  const queue = order.filter((v) => indeg[v] === 0);
  const deg = indeg.slice();
  for (let i = 0; i < queue.length; i++) {
    const v = queue[i];
    for (const t of succ[v]) { layer[t] = Math.max(layer[t], layer[v] + 1); if (--deg[t] === 0) queue.push(t); }
  }
  for (let v = 0; v < N; v++) {
    if (indeg[v] === 0 && succ[v].length) layer[v] = Math.max(layer[v], Math.min(...succ[v].map((t) => layer[t])) - 1);
  }
  // Renumber so the first layer is 0 and no layer is empty.
  const used = [...new Set(layer)].sort((a, b) => a - b);
  const rank = new Map(used.map((l, i) => [l, i]));
  return layer.map((l) => rank.get(l));
}

// Crossings between two adjacent layers: edges sorted by their upper end, then count inversions
// of their lower ends with a Fenwick tree (Barth, Jünger, Mutzel), O(E log V).
export function crossings(upper, lower, succ) {
  const pos = new Map(lower.map((v, i) => [v, i]));
  const ends = [];
  for (const u of upper) {
    const ts = succ[u].filter((t) => pos.has(t)).map((t) => pos.get(t)).sort((a, b) => a - b);
    for (const t of ts) ends.push(t);
  }
  const tree = new Array(lower.length + 1).fill(0);
  let count = 0;
  for (let i = 0; i < ends.length; i++) {
    // Edges already added whose lower end is right of this one cross it.
    let le = 0;
    for (let j = ends[i] + 1; j > 0; j -= j & -j) le += tree[j];
    count += i - le;
    for (let j = ends[i] + 1; j <= lower.length; j += j & -j) tree[j]++;
  }
  return count;
}

export function totalCrossings(layers, succ) {
  let n = 0;
  for (let l = 0; l + 1 < layers.length; l++) n += crossings(layers[l], layers[l + 1], succ);
  return n;
}

// Barycenter sweeps, alternately down and up, with adjacent swaps after each; the best order
// seen wins. Stops early once several sweeps in a row found nothing better. On big graphs (many
// long edges, so many dummies) the swaps run once, on the best order: they are the costly part.
export function reduceCrossings(layers, succ, pred, sweeps, transpose) {
  const size = layers.reduce((n, l) => n + l.length, 0);
  const everySweep = transpose && size <= 800;
  let best = layers.map((l) => l.slice()), bestCount = totalCrossings(best, succ);
  let cur = best.map((l) => l.slice());
  let stale = 0;
  for (let it = 0; it < sweeps && bestCount > 0 && stale < 6; it++) {
    const down = it % 2 === 0;
    if (down) for (let l = 1; l < cur.length; l++) cur[l] = byBarycenter(cur[l], cur[l - 1], pred);
    else for (let l = cur.length - 2; l >= 0; l--) cur[l] = byBarycenter(cur[l], cur[l + 1], succ);
    if (everySweep) transposeLayers(cur, succ, pred);
    const c = totalCrossings(cur, succ);
    if (c < bestCount) { best = cur.map((l) => l.slice()); bestCount = c; stale = 0; } else stale++;
  }
  if (transpose && !everySweep && bestCount > 0) transposeLayers(best, succ, pred);
  return best;
}

// Sort a layer by the mean position of each node's neighbours in the fixed layer; a node with
// none keeps its place (its own index stands in for the mean).
function byBarycenter(layer, fixed, neighbours) {
  const pos = new Map(fixed.map((v, i) => [v, i]));
  const bary = new Map();
  layer.forEach((v, i) => {
    const ns = neighbours[v].filter((n) => pos.has(n));
    bary.set(v, ns.length ? ns.reduce((a, n) => a + pos.get(n), 0) / ns.length * (layer.length / Math.max(1, fixed.length)) : i);
  });
  const idx = new Map(layer.map((v, i) => [v, i]));
  return layer.slice().sort((a, b) => bary.get(a) - bary.get(b) || idx.get(a) - idx.get(b));
}

// Swap neighbours in a layer while that lowers the crossings with both adjacent layers. Only
// the two nodes' own edges change crossings when they swap, so each test is O(deg u · deg v).
function transposeLayers(layers, succ, pred) {
  const positions = (l) => (l >= 0 && l < layers.length ? new Map(layers[l].map((v, i) => [v, i])) : null);
  const pair = (u, v, neighbours, pos) => {
    if (!pos) return 0;
    let c = 0;
    for (const a of neighbours[u]) {
      const pa = pos.get(a);
      if (pa === undefined) continue;
      for (const b of neighbours[v]) { const pb = pos.get(b); if (pb !== undefined && pb < pa) c++; }
    }
    return c;
  };
  let improved = true, rounds = 0;
  while (improved && rounds++ < 4) {
    improved = false;
    for (let l = 0; l < layers.length; l++) {
      const layer = layers[l], up = positions(l - 1), down = positions(l + 1);
      for (let i = 0; i + 1 < layer.length; i++) {
        const u = layer[i], v = layer[i + 1];
        const keep = pair(u, v, pred, up) + pair(u, v, succ, down);
        const swap = pair(v, u, pred, up) + pair(v, u, succ, down);
        if (swap < keep) { layer[i] = v; layer[i + 1] = u; improved = true; }
      }
    }
  }
}

// Positions within each layer: start packed, then sweep down and up, each time asking every node
// for the mean position of its neighbours and placing the layer as close to that as its order and
// spacing allow. Returns y per vertex.
function placeLayers(layers, succ, pred, size, o) {
  const y = new Array(size.length).fill(0);
  const gap = (a, b) => (size[a].h + size[b].h) / 2 + (size[a].w === 0 || size[b].w === 0 ? o.dummyGap : o.nodeGap);
  const seps = layers.map((l) => l.slice(1).map((v, i) => gap(l[i], v)));
  for (let l = 0; l < layers.length; l++) {
    let at = 0;
    layers[l].forEach((v, i) => { if (i) at += seps[l][i - 1]; y[v] = at; });
    const mid = at / 2;
    for (const v of layers[l]) y[v] -= mid;
  }
  const place = (l, neighbours) => {
    const layer = layers[l];
    const desired = layer.map((v) => {
      const ns = neighbours(v);
      return ns.length ? ns.reduce((a, n) => a + y[n], 0) / ns.length : y[v];
    });
    // Dummies (long edges) pull harder: straight long edges read better than straight short ones.
    const weights = layer.map((v) => (size[v].w === 0 ? 2 : 1));
    placeInOrder(desired, seps[l], weights).forEach((p, i) => { y[layer[i]] = p; });
  };
  for (let it = 0; it < o.placeIterations; it++) {
    if (it % 2 === 0) for (let l = 1; l < layers.length; l++) place(l, (v) => pred[v]);
    else for (let l = layers.length - 2; l >= 0; l--) place(l, (v) => succ[v]);
  }
  for (let l = 0; l < layers.length; l++) place(l, (v) => pred[v].concat(succ[v]));
  return y;
}

// Positions p minimising Σ w_i (p_i − desired_i)² with p_{i+1} − p_i ≥ seps[i]: substitute
// z_i = p_i − offset_i (offsets are the summed separations), which must not decrease, and solve
// that isotonic regression exactly by pooling adjacent violators.
export function placeInOrder(desired, seps, weights) {
  const n = desired.length;
  const offset = new Array(n).fill(0);
  for (let i = 1; i < n; i++) offset[i] = offset[i - 1] + seps[i - 1];
  const blocks = [];
  for (let i = 0; i < n; i++) {
    const w = weights ? weights[i] : 1;
    let b = { w, sum: w * (desired[i] - offset[i]), from: i, to: i };
    while (blocks.length && blocks[blocks.length - 1].sum / blocks[blocks.length - 1].w >= b.sum / b.w) {
      const prev = blocks.pop();
      b = { w: prev.w + b.w, sum: prev.sum + b.sum, from: prev.from, to: b.to };
    }
    blocks.push(b);
  }
  const out = new Array(n);
  for (const b of blocks) for (let i = b.from; i <= b.to; i++) out[i] = b.sum / b.w + offset[i];
  return out;
}
