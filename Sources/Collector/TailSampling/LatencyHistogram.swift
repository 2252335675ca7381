import Foundation

/// A sparse log-scale histogram of durations, weighted: buckets 2% wide from 1 µs up, so a
/// quantile read from it is within 2% of the exact one, in a few dozen entries per edge
/// however many requests it saw (latencies cluster).
struct LatencyHistogram: Sendable, Equatable {
    static let growth = 1.02
    private static let logGrowth = log(growth)
    private static let floorMs = 0.001

    private(set) var weights: [Int32: Double] = [:]
    private(set) var total: Double = 0

    mutating func record(ms: Double, weight: Double) {
        weights[Self.index(ms), default: 0] += weight
        total += weight
    }

    mutating func add(_ other: LatencyHistogram) {
        for (i, w) in other.weights { weights[i, default: 0] += w }
        total += other.total
    }

    static func index(_ ms: Double) -> Int32 {
        guard ms.isFinite, ms > floorMs else { return 0 }
        return Int32(min(4000, (log(ms / floorMs) / logGrowth).rounded(.down) + 1))
    }

    /// The bucket's upper edge: a quantile never reads lower than the true one.
    static func upperEdge(_ index: Int32) -> Double {
        index <= 0 ? floorMs : floorMs * pow(growth, Double(index))
    }

    /// The smallest bucket edge whose cumulative weight reaches `q` of the total.
    func quantile(_ q: Double) -> Double {
        guard total > 0 else { return 0 }
        var cumulative = 0.0
        let sorted = weights.keys.sorted()
        for i in sorted {
            cumulative += weights[i] ?? 0
            if cumulative >= q * total - 1e-9 { return Self.upperEdge(i) }
        }
        return Self.upperEdge(sorted.last ?? 0)
    }
}
