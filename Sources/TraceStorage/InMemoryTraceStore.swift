import Logging
import Synchronization
import TraceModel

/// Keeps every span in process memory behind a `Mutex`. Same semantics as `SQLiteTraceStore`.
/// Memory is not bounded by the store itself: run retention (`deleteSpans(startedBefore:)`) to bound it.
/// Searches scan every span, which is fine for tests, demos and small deployments.
public final class InMemoryTraceStore: TraceStore {
    struct State {
        var traces: [TraceID: [Span]] = [:]
        var spanCount = 0
        /// service -> operations
        var operations: [String: Set<Operation>] = [:]
        /// service -> remote services
        var remoteServices: [String: Set<String>] = [:]
        var closed = false

        mutating func index(_ span: Span) {
            operations[span.serviceName, default: []].insert(Operation(name: span.name, kind: span.kind))
            if let remote = SpanIndexing.remoteServiceName(of: span) {
                remoteServices[span.serviceName, default: []].insert(remote)
            }
        }

        func check() throws(TraceStoreError) {
            if closed { throw .closed }
        }
    }

    private let state = Mutex(State())
    private let logger: Logger

    public init(logger: Logger = Logger(label: "meshtrace.storage.memory")) {
        self.logger = logger
    }

    public func write(_ spans: [Span]) async throws {
        try state.withLock { s throws(TraceStoreError) in
            try s.check()
            for span in spans {
                s.traces[span.traceID, default: []].append(span)
                s.index(span)
            }
            s.spanCount += spans.count
        }
    }

    public func trace(id: TraceID) async throws -> [Span] {
        let spans = try state.withLock { s throws(TraceStoreError) in
            try s.check()
            return s.traces[id] ?? []
        }
        return SpanIndexing.sortedByStart(spans)
    }

    public func traces(ids: [TraceID]) async throws -> [[Span]] {
        let found = try state.withLock { s throws(TraceStoreError) in
            try s.check()
            return ids.map { s.traces[$0] ?? [] }
        }
        return found.map(SpanIndexing.sortedByStart)
    }

    public func findTraceIDs(_ query: TraceQuery) async throws -> [TraceID] {
        guard query.limit > 0 else { return [] }
        // Newest matching span per trace.
        let newest = try state.withLock { s throws(TraceStoreError) -> [(TraceID, UInt64)] in
            try s.check()
            var out: [(TraceID, UInt64)] = []
            for (id, spans) in s.traces {
                var best: UInt64?
                for span in spans where SpanIndexing.matches(span, query) {
                    if best == nil || span.startTimeNanos > best! { best = span.startTimeNanos }
                }
                if let best { out.append((id, best)) }
            }
            return out
        }
        return newest.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 > $1.0 }.prefix(query.limit).map(\.0)
    }

    public func serviceNames() async throws -> [String] {
        try state.withLock { s throws(TraceStoreError) in
            try s.check()
            return s.operations.keys.sorted()
        }
    }

    public func operations(service: String, kind: SpanKind?) async throws -> [Operation] {
        try state.withLock { s throws(TraceStoreError) in
            try s.check()
            return (s.operations[service] ?? []).filter { kind == nil || $0.kind == kind }
                .sorted { ($0.name, $0.kind.rawValue) < ($1.name, $1.kind.rawValue) }
        }
    }

    public func remoteServiceNames(service: String) async throws -> [String] {
        try state.withLock { s throws(TraceStoreError) in
            try s.check()
            return (s.remoteServices[service] ?? []).sorted()
        }
    }

    public func dependencies(startNanos: UInt64, endNanos: UInt64) async throws -> [DependencyLink] {
        let traces = try state.withLock { s throws(TraceStoreError) in
            try s.check()
            return s.traces.values.filter { spans in
                spans.contains { $0.startTimeNanos >= startNanos && $0.startTimeNanos <= endNanos }
            }
        }
        return DependencyLinker.merge(traces.flatMap { DependencyLinker.link(trace: $0) })
    }

    public func spans(startNanos: UInt64, endNanos: UInt64, limit: Int) async throws -> [Span] {
        guard limit > 0, startNanos <= endNanos else { return [] }
        let found = try state.withLock { s throws(TraceStoreError) -> [Span] in
            try s.check()
            var out: [Span] = []
            for spans in s.traces.values {
                for span in spans where span.startTimeNanos >= startNanos && span.startTimeNanos <= endNanos {
                    out.append(span)
                }
            }
            return out
        }
        let sorted = found.sorted(by: SpanIndexing.newestFirst)
        return Array(sorted.prefix(limit))
    }

    public func deleteSpans(startedBefore cutoff: UInt64) async throws -> Int {
        let deleted = try state.withLock { s throws(TraceStoreError) -> Int in
            try s.check()
            var deleted = 0
            for (id, spans) in s.traces {
                let kept = spans.filter { $0.startTimeNanos >= cutoff }
                guard kept.count != spans.count else { continue }
                deleted += spans.count - kept.count
                s.traces[id] = kept.isEmpty ? nil : kept
            }
            if deleted > 0 {
                s.spanCount -= deleted
                s.operations = [:]
                s.remoteServices = [:]
                for spans in s.traces.values { for span in spans { s.index(span) } }
            }
            return deleted
        }
        if deleted > 0 { logger.debug("retention deleted spans", metadata: ["count": "\(deleted)"]) }
        return deleted
    }

    public func stats() async throws -> StoreStats {
        try state.withLock { s throws(TraceStoreError) in
            try s.check()
            return StoreStats(spanCount: s.spanCount, traceCount: s.traces.count, bytesOnDisk: nil)
        }
    }

    public func close() async throws {
        state.withLock { s in
            s.closed = true
            s.traces = [:]
            s.operations = [:]
            s.remoteServices = [:]
            s.spanCount = 0
        }
    }
}
