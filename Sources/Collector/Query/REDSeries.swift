import Foundation

/// Rate, errors and duration (RED) of a stream of weighted requests, in equal time buckets over a
/// window and in total. Each request weighs `1 / sampling.rate` as in the service graph, so the
/// rates estimate real traffic; error rates and latency quantiles are weighted the same way.
struct REDSeries: Sendable {
    struct Point: Sendable, Equatable, Encodable {
        /// Bucket start, Unix milliseconds.
        var t: Int64
        /// Estimated real requests (weighted).
        var requests: Double
        var rps: Double
        /// Errors (any: 4xx, 5xx, gRPC, span status) over requests; 0 when idle.
        var errorRate: Double
        /// Weighted latency quantiles in milliseconds; null for a bucket without requests.
        var p50Ms: Double?
        var p95Ms: Double?
        var p99Ms: Double?

        enum CodingKeys: String, CodingKey { case t, requests, rps, errorRate, p50Ms, p95Ms, p99Ms }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(t, forKey: .t)
            try c.encode(Self.rounded(requests), forKey: .requests)
            try c.encode(Self.rounded(rps), forKey: .rps)
            try c.encode(Self.rounded(errorRate), forKey: .errorRate)
            // Explicit nulls: a chart draws a gap there rather than a zero latency.
            try c.encode(p50Ms.map(Self.rounded), forKey: .p50Ms)
            try c.encode(p95Ms.map(Self.rounded), forKey: .p95Ms)
            try c.encode(p99Ms.map(Self.rounded), forKey: .p99Ms)
        }

        /// Six significant digits are plenty for a chart and keep the JSON short.
        static func rounded(_ v: Double) -> Double {
            guard v.isFinite else { return 0 }
            guard v != 0 else { return 0 }
            let scale = pow(10, 5 - floor(log10(abs(v))))
            return (v * scale).rounded() / scale
        }
    }

    let startNanos: UInt64
    let endNanos: UInt64
    let stepNanos: UInt64
    let bucketCount: Int
    private var buckets: [ServiceGraph.Traffic]
    private var durations: [[(ms: Double, weight: Double)]]
    private var allDurations: [(ms: Double, weight: Double)] = []
    private var total = ServiceGraph.Traffic()

    /// Buckets `[start + i·step, start + (i+1)·step)` covering `[startNanos, endNanos]`.
    init(startNanos: UInt64, endNanos: UInt64, stepNanos: UInt64) {
        precondition(stepNanos > 0, "step must be positive")
        self.startNanos = startNanos
        self.endNanos = max(startNanos, endNanos)
        self.stepNanos = stepNanos
        let span = endNanos > startNanos ? endNanos - startNanos : 0
        self.bucketCount = max(1, Int((span + stepNanos - 1) / stepNanos))
        self.buckets = Array(repeating: ServiceGraph.Traffic(), count: bucketCount)
        self.durations = Array(repeating: [], count: bucketCount)
    }

    /// The summary's rate is over the window asked for (the graph's), not the buckets' cover.
    var windowSeconds: Double { endNanos > startNanos ? Double(endNanos - startNanos) / 1e9 : Double(stepNanos) / 1e9 }

    /// Requests outside the window are ignored.
    mutating func add(atNanos time: UInt64, weight: Double, outcome: ServiceGraph.Outcome, durationMs: Double) {
        guard time >= startNanos, time <= endNanos else { return }
        let index = Int((time - startNanos) / stepNanos)
        guard index < bucketCount else { return }
        buckets[index].add(outcome, weight: weight)
        durations[index].append((durationMs, weight))
        total.add(outcome, weight: weight)
        allDurations.append((durationMs, weight))
    }

    mutating func add(_ m: ServiceGraph.Measurement) {
        add(atNanos: m.startNanos, weight: m.weight, outcome: m.outcome, durationMs: m.durationMs)
    }

    var isEmpty: Bool { total.spans == 0 }

    var points: [Point] {
        let stepSeconds = Double(stepNanos) / 1e9
        return (0..<bucketCount).map { i in
            Self.point(
                t: Int64((startNanos + UInt64(i) * stepNanos) / 1_000_000), traffic: buckets[i],
                durations: durations[i], seconds: stepSeconds)
        }
    }

    /// The whole window as one point (its `t` is the window's start).
    var summary: Point {
        Self.point(t: Int64(startNanos / 1_000_000), traffic: total, durations: allDurations, seconds: windowSeconds)
    }

    private static func point(t: Int64, traffic: ServiceGraph.Traffic, durations: [(ms: Double, weight: Double)], seconds: Double) -> Point {
        let empty = durations.isEmpty
        let sorted = durations.sorted { $0.ms < $1.ms }
        return Point(
            t: t, requests: traffic.requests, rps: seconds > 0 ? traffic.requests / seconds : 0, errorRate: traffic.errorRate,
            p50Ms: empty ? nil : ServiceGraph.weightedQuantile(sorted: sorted, 0.50), p95Ms: empty ? nil : ServiceGraph.weightedQuantile(sorted: sorted, 0.95),
            p99Ms: empty ? nil : ServiceGraph.weightedQuantile(sorted: sorted, 0.99))
    }
}
