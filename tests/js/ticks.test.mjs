// Unit tests of the axis ticks (Sources/Collector/UI/Assets/ticks.js). Run: node --test tests/js
import test from 'node:test';
import assert from 'node:assert/strict';
import { timeTicks, niceTicks } from '../../Sources/Collector/UI/Assets/ticks.js';

const RANGES = [3, 40, 900, 2500, 8000, 45e3, 3e5, 9e5, 36e5, 5 * 36e5, 20 * 36e5, 26 * 36e5, 3 * 864e5, 9 * 864e5, 40 * 864e5];

test('time ticks are unique, inside the range, few, and on round times', () => {
  let seed = 3;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (const range of RANGES) {
    for (let k = 0; k < 50; k++) {
      const t0 = 1.7e12 + Math.floor(rnd() * 4e10);
      const ticks = timeTicks(t0, t0 + range, 6);
      assert.ok(ticks.length >= 2 && ticks.length <= 7, `${ticks.length} ticks for ${range} ms`);
      const labels = ticks.map((x) => x.label);
      assert.equal(new Set(labels).size, labels.length, `repeated labels for ${range} ms: ${labels}`);
      for (const x of ticks) assert.ok(x.t >= t0 - 1e-6 && x.t <= t0 + range + 1e-6);
      const steps = new Set(ticks.slice(1).map((x, i) => x.t - ticks[i].t));
      if (range < 20 * 864e5) assert.ok(steps.size <= 2, 'even steps (a DST change may differ by an hour)');
    }
  }
});

test('labels carry the precision the step needs', () => {
  const t0 = new Date(2024, 4, 6, 10, 20, 30, 0).getTime();
  assert.deepEqual(timeTicks(t0, t0 + 40, 4).map((x) => x.label), ['10:20:30.000', '10:20:30.010', '10:20:30.020', '10:20:30.030', '10:20:30.040']);
  assert.deepEqual(timeTicks(t0, t0 + 4000, 4).map((x) => x.label), ['10:20:30', '10:20:31', '10:20:32', '10:20:33', '10:20:34']);
  assert.deepEqual(timeTicks(t0, t0 + 36e5, 4).map((x) => x.label), ['10:30', '10:45', '11:00', '11:15']);
  // Crossing midnight: the new day's first tick says which day.
  const late = new Date(2024, 4, 6, 22, 10).getTime();
  assert.deepEqual(timeTicks(late, late + 4 * 36e5, 4).map((x) => x.label), ['23:00', 'May 7 00:00', '01:00', '02:00']);
  assert.deepEqual(timeTicks(late, late + 3 * 864e5, 4).map((x) => x.label), ['May 7', 'May 8', 'May 9']);
});

test('nice ticks cover the values in round steps', () => {
  assert.deepEqual(niceTicks(0, 97, 4), [0, 25, 50, 75, 100]);
  assert.deepEqual(niceTicks(0, 0.3, 3), [0, 0.1, 0.2, 0.3]);
  assert.deepEqual(niceTicks(0, 0, 4), [0, 0.25, 0.5, 0.75, 1]);
  for (const hi of [0.001, 1, 7, 13, 999, 12345]) {
    const t = niceTicks(0, hi, 4);
    assert.ok(t[0] === 0 && t[t.length - 1] >= hi && t.length <= 7, `${hi}: ${t}`);
  }
});
