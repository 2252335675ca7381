/// The lower time bounds a ClickHouse search tries, newest window first.
///
/// "The 20 newest traces of a service" groups every matching index row of the window by trace;
/// at 10M spans (1.25M rows for one service, all in the last hour) that took 267 ms p50, where
/// SQLite walks its (service, start) index from the newest row and stops after 20 traces.
/// 18.16 has no skip indexes, so the search narrows the window instead: `[now - 1 min, max]`
/// first, then 16 times wider, then the query's own window.
///
/// Exact, not an estimate: only the lower bound moves. A trace whose newest matching span lies
/// in `[lower, max]` has the same newest time in the narrow window as in the full one, and a
/// trace left out has its newest matching span before `lower`, so older than every trace found.
/// When a window already holds `limit` traces, they are the full query's first `limit`.
/// The upper bound is never narrowed, so spans stamped in the future (clock skew) stay in.
enum SearchWindows {
    static let firstWidthNanos: UInt64 = 60 * 1_000_000_000
    static let growth: UInt64 = 16

    static func lowerBounds(min: UInt64, max: UInt64, now: UInt64) -> [UInt64] {
        let top = Swift.min(max, now)
        var bounds: [UInt64] = []
        var width = firstWidthNanos
        while top > min, top - min > width {
            bounds.append(top - width)
            let (wider, overflow) = width.multipliedReportingOverflow(by: growth)
            if overflow { break }
            width = wider
        }
        bounds.append(min)
        return bounds
    }
}
