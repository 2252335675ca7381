// Axis ticks for the charts and the search scatter plot. Pure (no DOM): tests/js/ticks.test.mjs.

const SECOND = 1000, MINUTE = 60 * SECOND, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
const TIME_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND,
  30 * SECOND, MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR,
  6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n, w = 2) => String(n).padStart(w, '0');

// Ticks for a time axis from t0 to t1 (Unix ms), at most `max` of them, on round local times.
// Labels carry as much precision as the step needs (milliseconds only below a second), and the
// date wherever the day changes, so no two labels are the same.
export function timeTicks(t0, t1, max = 6) {
  if (!(t1 > t0)) return [{ t: t0, label: timeLabel(t0, SECOND, true) }];
  const range = t1 - t0;
  const step = TIME_STEPS.find((s) => range / s <= max) || Math.ceil(range / max / DAY) * DAY;
  // Round local times: align to the step in the local zone (hours and days start at local midnight).
  const offset = new Date(t0).getTimezoneOffset() * MINUTE;
  let t = Math.ceil((t0 - offset) / step) * step + offset;
  if (step >= DAY) {
    const d = new Date(t0);
    d.setHours(0, 0, 0, 0);
    t = d.getTime();
    while (t < t0) t += step;
  }
  const out = [];
  let prevDay = null;
  for (; t <= t1 + 1e-6 && out.length <= max; t += step) {
    const day = new Date(t).toDateString();
    const newDay = prevDay !== null && day !== prevDay;
    // Over a day or more every label has its date; else only the first tick of a new day.
    out.push({ t, label: timeLabel(t, step, newDay || range >= DAY) });
    prevDay = day;
  }
  return out;
}

function timeLabel(t, step, withDate) {
  const d = new Date(t);
  const date = `${MONTHS[d.getMonth()]} ${d.getDate()}`;
  if (step >= DAY) return date;
  let time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (step < MINUTE) time += `:${pad(d.getSeconds())}`;
  if (step < SECOND) time += `.${pad(d.getMilliseconds(), 3)}`;
  return withDate ? `${date} ${time}` : time;
}

// Round values from 0 (or lo) up to at least hi, about `count` of them: steps of 1, 2 or 5 × 10^k.
export function niceTicks(lo, hi, count = 4) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const first = Math.floor(lo / step) * step;
  const out = [];
  for (let v = first; v < hi + step - 1e-9 * step; v += step) out.push(+v.toPrecision(12));
  return out;
}
