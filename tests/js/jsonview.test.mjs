// The JSON view's search and the ids it opens to show a match (the ids children() gives nodes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { searchJSON, pathIds } from '../../Sources/Collector/UI/Assets/jsonview.js';

const trace = (n) => ({
  traceID: 'abc',
  spans: Array.from({ length: n }, (_, i) => ({ spanID: `s${String(i).padStart(5, '0')}`, references: i ? [{ spanID: `s${String(i - 1).padStart(5, '0')}` }] : [] })),
  processes: { p1: { serviceName: 'svc' } },
});

test('matches come in document order, keys and values', () => {
  const t = trace(3);
  const m = searchJSON(t, 'S00001');
  assert.deepEqual(m.map((x) => x.path), [['spans', 1, 'spanID'], ['spans', 2, 'references', 0, 'spanID']]);
  assert.deepEqual(searchJSON(t, 'servicen').map((x) => [x.path, x.key]), [[['processes', 'p1', 'serviceName'], true]]);
});

test('a match in a long array opens its group and the element under its own id', () => {
  const t = trace(10_000);
  const [m] = searchJSON(t, 's09999').filter((x) => x.path.at(-1) === 'spanID' && x.path.length === 3);
  // children() names the group '$/spans/[9900]' and the element '$/spans/9999'.
  assert.deepEqual(pathIds(t, m.path), ['$', '$/spans', '$/spans/[9900]', '$/spans/9999']);
  assert.deepEqual(pathIds(t, ['spans', 150, 'references', 0, 'spanID']),
    ['$', '$/spans', '$/spans/[100]', '$/spans/150', '$/spans/150/references', '$/spans/150/references/0']);
});

test('a hit on a long array element itself opens only its group', () => {
  const arr = Array.from({ length: 250 }, (_, i) => i);
  assert.deepEqual(pathIds({ a: arr }, ['a', 230]), ['$', '$/a', '$/a/[200]']);
});
