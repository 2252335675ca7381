import Synchronization
import TraceModel

/// The service graph's numbers (requests, errors, p95, per edge and node), kept from every
/// trace *before* the sampling decision, so the graph stays exact when 99% of traces are
/// dropped. It holds no spans: per 5-second bucket of the last hour, per edge, a few counters, a
/// 2%-wide latency histogram and up to 20 trace ids. It never reads the store, so it works
/// the same over SQLite, memory or ClickHouse.
///
/// Edges are found as the graph over stored spans finds them (`ServiceGraph.measure`), one
/// whole trace at a time, when the trace is decided: its spans are all there, so a CLIENT span
/// meets the SERVER span it called. A span arriving after its trace's decision is counted alone.
final class REDAggregate: Sendable {
    static let bucketNanos: UInt64 = 5_000_000_000
    /// One hour of buckets; a longer graph window reads the store (kept spans, adjusted counts).
    static let retentionNanos: UInt64 = 3_600_000_000_000
    /// Edges per bucket at most (a service mesh has tens); more are counted, not kept.
    static let maxEdgesPerBucket = 5_000

    private struct State: Sendable {
        var buckets: [UInt64: GraphCounts] = [:]
        var droppedObservations = 0
        var lastPruned: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Since when it has counted every span (epoch nanoseconds); nil while tail sampling is off
    /// (the graph then reads stored spans, which are all of them).
    private let activeSince = Mutex<UInt64?>(nil)
    private let now: @Sendable () -> UInt64

    init(now: @escaping @Sendable () -> UInt64 = WallClock.nowNanos) {
        self.now = now
    }

    /// Tail sampling turned on: count from now.
    func activate() {
        let current = now()
        activeSince.withLock { if $0 == nil { $0 = current } }
    }

    /// Tail sampling turned off: what was counted is no longer all there is.
    func deactivate() {
        activeSince.withLock { $0 = nil }
        state.withLock { $0.buckets = [:] }
    }

    var since: UInt64? { activeSince.withLock { $0 } }

    /// Observations that fell outside the last hour, or past the edge limit.
    var droppedObservations: Int { state.withLock { $0.droppedObservations } }

    /// Counts one trace's spans (a whole decided trace, or late spans on their own).
    func record(_ spans: [Span]) {
        let current = now()
        let oldest = current > Self.retentionNanos ? current - Self.retentionNanos : 0
        let newest = current + 60_000_000_000  // a client clock a minute ahead still counts
        func bucketIndex(_ nanos: UInt64) -> UInt64? {
            guard nanos >= oldest, nanos <= newest else { return nil }
            return nanos / Self.bucketNanos
        }
        let observations = ServiceGraph.measure(spans: spans).measurements
        state.withLock { s in
            for span in spans {
                guard let b = bucketIndex(span.startTimeNanos) else { continue }
                s.buckets[b, default: GraphCounts()].reporting.insert(span.serviceName)
                if ServiceGraph.isGateway(span) { s.buckets[b, default: GraphCounts()].gateways.insert(span.serviceName) }
            }
            for observation in observations {
                guard let b = bucketIndex(observation.startNanos) else {
                    s.droppedObservations += 1
                    continue
                }
                let key = ServiceGraph.EdgeKey(source: observation.source, target: observation.target)
                if s.buckets[b]?.edges[key] == nil && (s.buckets[b]?.edges.count ?? 0) >= Self.maxEdgesPerBucket {
                    s.droppedObservations += 1
                } else {
                    s.buckets[b, default: GraphCounts()].add(observation)
                }
            }
            // Expired buckets go once per bucket of time, not on every trace.
            let expired = oldest / Self.bucketNanos
            if expired != s.lastPruned {
                s.lastPruned = expired
                s.buckets = s.buckets.filter { $0.key >= expired }
            }
        }
    }

    /// Where its complete counts begin: the first whole bucket since tail sampling was turned on,
    /// or the oldest bucket it keeps. Nil while it is off.
    var countsFrom: UInt64? {
        guard let since else { return nil }
        let current = now()
        let oldest = current > Self.retentionNanos ? current - Self.retentionNanos : 0
        let firstWhole = (since + Self.bucketNanos - 1) / Self.bucketNanos * Self.bucketNanos
        return max(firstWhole, (oldest + Self.bucketNanos - 1) / Self.bucketNanos * Self.bucketNanos)
    }

    /// The counts of the buckets whose middle lies in `[start, end]`: 5-second resolution, each
    /// end of the window off by at most 2.5 s and by none on average.
    func counts(startNanos: UInt64, endNanos: UInt64) -> GraphCounts {
        let half = Self.bucketNanos / 2
        let first = startNanos > half ? (startNanos - half + Self.bucketNanos - 1) / Self.bucketNanos : 0
        guard endNanos >= half else { return GraphCounts() }
        let last = (endNanos - half) / Self.bucketNanos
        var total = GraphCounts()
        state.withLock { s in
            for (b, bucket) in s.buckets where b >= first && b <= last { total.add(bucket) }
        }
        return total
    }

    func graph(startNanos: UInt64, endNanos: UInt64) -> ServiceGraph {
        counts(startNanos: startNanos, endNanos: endNanos).graph()
    }
}
