// Unit tests of the service graph's layered layout (Sources/Collector/UI/Assets/layered.js).
// Run: node --test tests/js
import test from 'node:test';
import assert from 'node:assert/strict';
import { layered, placeInOrder, crossings, reduceCrossings, totalCrossings, feedbackOrder } from '../../Sources/Collector/UI/Assets/layered.js';
import { randomMesh } from './meshes.mjs';

const box = (p, n) => ({ x0: p.x - n.width / 2, x1: p.x + n.width / 2, y0: p.y - n.height / 2, y1: p.y + n.height / 2 });
const overlap = (a, b) => a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1;

function assertNoOverlaps(nodes, result) {
  const boxes = nodes.map((n) => [n.id, box(result.nodes.get(n.id), n)]);
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      assert.ok(!overlap(boxes[i][1], boxes[j][1]), `${boxes[i][0]} overlaps ${boxes[j][0]}`);
    }
  }
}

test('placeInOrder keeps what fits and spreads what collides around its wish', () => {
  assert.deepEqual(placeInOrder([0, 50, 100], [10, 10], null), [0, 50, 100]);
  assert.deepEqual(placeInOrder([0, 0], [10], null), [-5, 5]);
  // Weighted: the heavier node moves less. minimise 3a² + (a + 10)² -> a = -2.5.
  assert.deepEqual(placeInOrder([0, 0], [10], [3, 1]), [-2.5, 7.5]);
  // Three wanting one spot, uneven gaps: centred on the wish.
  const p = placeInOrder([7, 7, 7], [4, 6], null);
  assert.deepEqual(p.map((v) => v - p[0]), [0, 4, 10]);
  assert.ok(Math.abs((p[0] + p[1] + p[2]) / 3 - 7) < 1e-9);
});

test('placeInOrder is feasible and optimal on random input', () => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let trial = 0; trial < 200; trial++) {
    const n = 1 + Math.floor(rnd() * 12);
    const desired = Array.from({ length: n }, () => rnd() * 100);
    const seps = Array.from({ length: n - 1 }, () => 1 + rnd() * 20);
    const w = Array.from({ length: n }, () => 0.5 + rnd() * 2);
    const p = placeInOrder(desired, seps, w);
    for (let i = 0; i + 1 < n; i++) assert.ok(p[i + 1] - p[i] >= seps[i] - 1e-9, 'separation');
    const cost = (q) => q.reduce((a, v, i) => a + w[i] * (v - desired[i]) ** 2, 0);
    // Any feasible nudge (shift a suffix right or a prefix left) costs at least as much.
    for (let k = 0; k < n; k++) {
      for (const d of [0.01, 1]) {
        const right = p.map((v, i) => (i >= k ? v + d : v));
        const left = p.map((v, i) => (i <= k ? v - d : v));
        assert.ok(cost(right) >= cost(p) - 1e-7 && cost(left) >= cost(p) - 1e-7, 'optimal');
      }
    }
  }
});

test('crossings counts inversions between two layers', () => {
  const succ = { a: ['d'], b: ['c'], c: [], d: [] };
  assert.equal(crossings(['a', 'b'], ['c', 'd'], succ), 1);
  assert.equal(crossings(['a', 'b'], ['d', 'c'], succ), 0);
  // K3,3 drawn in order: C(3,2)·C(3,2) = 9 crossings.
  const k = { 0: [3, 4, 5], 1: [3, 4, 5], 2: [3, 4, 5] };
  assert.equal(crossings([0, 1, 2], [3, 4, 5], k), 9);
});

test('crossing reduction untangles a graph that can be drawn without crossings', () => {
  // Three chains a->b->c, scrambled in the middle and last layers.
  const succ = { a1: ['b1'], a2: ['b2'], a3: ['b3'], b1: ['c1'], b2: ['c2'], b3: ['c3'], c1: [], c2: [], c3: [] };
  const pred = { a1: [], a2: [], a3: [], b1: ['a1'], b2: ['a2'], b3: ['a3'], c1: ['b1'], c2: ['b2'], c3: ['b3'] };
  const scrambled = [['a1', 'a2', 'a3'], ['b3', 'b1', 'b2'], ['c2', 'c3', 'c1']];
  assert.ok(totalCrossings(scrambled, succ) > 0);
  for (const transpose of [false, true]) {
    const out = reduceCrossings(scrambled, succ, pred, 8, transpose);
    assert.equal(totalCrossings(out, succ), 0);
  }
});

test('feedbackOrder breaks every cycle', () => {
  const links = [{ s: 0, t: 1 }, { s: 1, t: 2 }, { s: 2, t: 0 }, { s: 2, t: 3 }];
  const order = feedbackOrder(4, links);
  assert.deepEqual([...order].sort(), [0, 1, 2, 3]);
  const pos = new Map(order.map((v, i) => [v, i]));
  assert.equal(links.filter((l) => pos.get(l.s) > pos.get(l.t)).length, 1);
});

test('a chain is straight and a fan-out centres its caller', () => {
  const n = (id) => ({ id, width: 40, height: 40 });
  const chain = layered([n('a'), n('b'), n('c')], [{ source: 'a', target: 'b' }, { source: 'b', target: 'c' }]);
  const [a, b, c] = ['a', 'b', 'c'].map((id) => chain.nodes.get(id));
  assert.ok(a.x < b.x && b.x < c.x);
  assert.ok(a.y === b.y && b.y === c.y);
  const fan = layered([n('g'), n('x'), n('y')], [{ source: 'g', target: 'x' }, { source: 'g', target: 'y' }]);
  const [g, x, y] = ['g', 'x', 'y'].map((id) => fan.nodes.get(id));
  assert.equal(x.x, y.x);
  assert.ok(Math.abs(g.y - (x.y + y.y) / 2) < 1e-9);
  assert.ok(Math.abs(x.y - y.y) >= 40 + 24 - 1e-9);
});

test('cycles, self-loops, duplicate edges and unknown ends', () => {
  const nodes = ['a', 'b', 'c'].map((id) => ({ id, width: 30, height: 30 }));
  const edges = [{ source: 'a', target: 'b' }, { source: 'b', target: 'c' }, { source: 'c', target: 'a' },
    { source: 'a', target: 'b' }, { source: 'b', target: 'b' }, { source: 'a', target: 'nowhere' }];
  const r = layered(nodes, edges);
  assert.equal(r.edges.length, 5);
  assert.equal(r.edges.filter((e) => e.reversed).length, 1);
  assert.equal(r.edges.filter((e) => e.self).length, 1);
  for (const e of r.edges.filter((x) => !x.self)) {
    // Points run from the source's centre to the target's, whichever way it was laid out.
    const s = r.nodes.get(e.source), t = r.nodes.get(e.target), pts = e.points;
    assert.deepEqual([pts[0].x, pts[0].y], [s.x, s.y]);
    assert.deepEqual([pts[pts.length - 1].x, pts[pts.length - 1].y], [t.x, t.y]);
  }
  assertNoOverlaps(nodes, r);
});

for (const size of [30, 100]) {
  test(`a ${size}-service mesh with fan-out and fan-in: layered, no overlaps, fewer crossings`, () => {
    const { nodes, edges } = randomMesh(size, 11);
    const t = performance.now();
    const r = layered(nodes, edges);
    const ms = performance.now() - t;
    assertNoOverlaps(nodes, r);
    for (const e of r.edges) {
      if (e.self) continue;
      const s = r.nodes.get(e.source), d = r.nodes.get(e.target);
      if (!e.reversed) assert.ok(s.layer < d.layer, `${e.source} -> ${e.target} goes forward`);
    }
    const unsorted = layered(nodes, edges, { sweeps: 0 });
    assert.ok(r.crossings < unsorted.crossings, `${r.crossings} < ${unsorted.crossings}`);
    assert.ok(r.layers >= 4, 'the mesh is deep');
    assert.deepEqual(layered(nodes, edges).nodes, r.nodes, 'deterministic');
    console.log(`# ${size} services, ${edges.length} edges: ${r.layers} layers, ${unsorted.crossings} -> ${r.crossings} crossings, ${ms.toFixed(1)} ms`);
  });
}
