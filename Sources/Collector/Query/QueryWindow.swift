/// The time window of the UI's aggregate APIs (graph, its series, monitor, operations graph):
/// `lookback` (a Go duration, 1s to 24h) ending at `endTs` (Unix ms, default now).
struct QueryWindow: Sendable, Equatable {
    var startNanos: UInt64
    var endNanos: UInt64
    var lookbackNanos: UInt64
    var endMs: Int64

    static let maxLookbackNanos: UInt64 = 24 * 3_600 * 1_000_000_000
    /// Spans this long before the window are read too, only to find parents of early spans.
    static let lookBehindNanos: UInt64 = 60 * 1_000_000_000

    init(startNanos: UInt64, endNanos: UInt64, lookbackNanos: UInt64, endMs: Int64) {
        self.startNanos = startNanos
        self.endNanos = endNanos
        self.lookbackNanos = lookbackNanos
        self.endMs = endMs
    }

    init(_ params: QueryParameters, defaultLookbackNanos: UInt64, examples: String = "1m, 5m or 1h") throws(HTTPFailure) {
        let lookback = try params.goDurationNanos("lookback") ?? defaultLookbackNanos
        guard lookback >= 1_000_000_000, lookback <= Self.maxLookbackNanos else {
            throw HTTPFailure.badRequest("parameter 'lookback' must be between 1s and 24h, like \(examples)")
        }
        let endMs = try params.int64("endTs", min: 1, max: QueryParameters.maxMillis) ?? Int64(WallClock.nowNanos() / 1_000_000)
        let end = UInt64(endMs) * 1_000_000 + 999_999
        self.init(startNanos: end > lookback ? end - lookback : 0, endNanos: end, lookbackNanos: lookback, endMs: endMs)
    }

    /// Where to start reading so that the parents of the window's first spans are found.
    var readFromNanos: UInt64 { startNanos > Self.lookBehindNanos ? startNanos - Self.lookBehindNanos : 0 }

    /// `points` buckets over the window (`points` parameter, 2 to 500, default 30), each a whole
    /// number of milliseconds long.
    static func stepNanos(_ params: QueryParameters, lookbackNanos: UInt64, defaultPoints: Int64 = 30) throws(HTTPFailure) -> UInt64 {
        let points = try params.int64("points", min: 2, max: 500) ?? defaultPoints
        let step = max(1_000_000, lookbackNanos / UInt64(points))
        return step - step % 1_000_000
    }
}
