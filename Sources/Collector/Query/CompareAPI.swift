import Hummingbird
import TraceModel
import TraceStorage

/// Trace comparison for the UI's `/trace/{A}...{B}` page:
///
/// - `GET /api/meshtrace/compare?a=<traceID>&b=<traceID>`: the structural diff (`TraceDiff`) with
///   a summary of each trace.
/// - `GET /api/meshtrace/compare/typical/{traceID}?lookback=1h[&endTs=<ms>]`: the median-duration
///   trace among the other traces with the same root operation in the window, to answer "why was
///   this one slow?".
struct CompareAPI: Sendable {
    let store: any TraceStore
    /// Traces of the same root operation looked at, newest first, to find the typical one.
    var maxCandidates = 200

    struct TraceSummary: Encodable {
        var traceID: String
        var spans: Int
        var errors: Int
        var services: Int
        var startMicros: UInt64
        var durationMicros: UInt64
        var rootService: String
        var rootOperation: String
    }

    struct NodeBody: Encodable {
        struct Side: Encodable {
            var count: Int
            var durationMicros: UInt64
            var errors: Int
        }

        var parent: Int
        var depth: Int
        var service: String
        var operation: String
        var presence: TraceDiff.Presence
        var a: Side
        var b: Side
    }

    struct Summary: Encodable {
        var nodes: Int
        var both: Int
        var onlyA: Int
        var onlyB: Int
    }

    struct Body: Encodable {
        var a: TraceSummary
        var b: TraceSummary
        var summary: Summary
        /// Depth-first, parents first; `parent` is an index into this list, -1 for a root.
        var nodes: [NodeBody]
    }

    struct TypicalBody: Encodable {
        var traceID: String
        var durationMicros: UInt64
        /// Traces of the same root operation in the window, the given one excluded.
        var candidates: Int
        var rootService: String
        var rootOperation: String
        var lookbackMs: UInt64
        var endTs: Int64
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/meshtrace/compare") { request, _ in
            await QueryResponder.respond("compare") { try QueryResponder.encode(await self.compare(QueryParameters(request))) }
        }
        router.get("/api/meshtrace/compare/typical/{traceID}") { request, context in
            await QueryResponder.respond("typical trace") {
                try QueryResponder.encode(await self.typical(context.parameters.get("traceID") ?? "", QueryParameters(request)))
            }
        }
    }

    func load(_ name: String, _ hex: String?) async throws -> [Span] {
        guard let hex, !hex.isEmpty else { throw HTTPFailure.badRequest("parameter '\(name)' is required: a trace id") }
        guard hex.count <= 32, hex.allSatisfy(\.isHexDigit) else {
            throw HTTPFailure.badRequest("parameter '\(name)' must be a trace id of up to 32 hex digits, got '\(hex)'")
        }
        let notFound = HTTPFailure.notFound("trace \(hex) ('\(name)') not found")
        guard let id = try JaegerQueryAPI.parseTraceID(hex) else { throw notFound }
        let spans = try await store.trace(id: id)
        guard !spans.isEmpty else { throw notFound }
        return spans
    }

    func compare(_ params: QueryParameters) async throws -> Body {
        let a = try await load("a", params.string("a"))
        let b = try await load("b", params.string("b"))
        let diff = TraceDiff(a: a, b: b)
        var summary = Summary(nodes: diff.nodes.count, both: 0, onlyA: 0, onlyB: 0)
        let nodes = diff.nodes.map { n -> NodeBody in
            switch n.presence {
            case .both: summary.both += 1
            case .onlyA: summary.onlyA += 1
            case .onlyB: summary.onlyB += 1
            }
            return NodeBody(
                parent: n.parent ?? -1, depth: n.depth, service: n.service, operation: n.operation, presence: n.presence,
                a: .init(count: n.a.count, durationMicros: n.a.durationNanos / 1_000, errors: n.a.errors),
                b: .init(count: n.b.count, durationMicros: n.b.durationNanos / 1_000, errors: n.b.errors))
        }
        return Body(a: Self.summarize(a), b: Self.summarize(b), summary: summary, nodes: nodes)
    }

    func typical(_ hex: String, _ params: QueryParameters) async throws -> TypicalBody {
        let window = try QueryWindow(params, defaultLookbackNanos: 3_600 * 1_000_000_000, examples: "15m, 1h or 6h")
        let trace = try await load("traceID", hex)
        guard let root = Self.root(of: trace) else { throw HTTPFailure.notFound("trace \(hex) has no spans") }
        let query = TraceQuery(
            serviceName: root.serviceName, operationName: root.name, startTimeMinNanos: window.startNanos,
            startTimeMaxNanos: window.endNanos, limit: maxCandidates + 1)
        let ids = try await store.findTraceIDs(query).filter { $0 != root.traceID }.prefix(maxCandidates)
        let traces = try await store.traces(ids: Array(ids))
        let peers = traces.compactMap { spans -> (TraceID, UInt64)? in
            guard let r = Self.root(of: spans), r.serviceName == root.serviceName, r.name == root.name else { return nil }
            return (r.traceID, Self.duration(of: spans))
        }.sorted { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
        guard !peers.isEmpty else {
            throw HTTPFailure.notFound("no other trace starts with \(root.serviceName): \(root.name) in the window; try a longer lookback")
        }
        // The lower median: with an even count, the faster of the two middle traces.
        let median = peers[(peers.count - 1) / 2]
        return TypicalBody(
            traceID: median.0.hex, durationMicros: median.1 / 1_000, candidates: peers.count, rootService: root.serviceName,
            rootOperation: root.name, lookbackMs: window.lookbackNanos / 1_000_000, endTs: window.endMs)
    }

    /// The earliest span whose parent is not in the trace.
    static func root(of spans: [Span]) -> Span? {
        let ids = Set(spans.map(\.spanID))
        let roots = spans.filter { span in span.parentSpanID.map { $0 == span.spanID || !ids.contains($0) } ?? true }
        return (roots.isEmpty ? spans : roots).min { $0.startTimeNanos != $1.startTimeNanos ? $0.startTimeNanos < $1.startTimeNanos : $0.spanID < $1.spanID }
    }

    /// Last end minus first start, as the search results show it.
    static func duration(of spans: [Span]) -> UInt64 {
        guard let first = spans.map(\.startTimeNanos).min(), let last = spans.map(\.endTimeNanos).max(), last > first else { return 0 }
        return last - first
    }

    static func summarize(_ spans: [Span]) -> TraceSummary {
        let root = root(of: spans)
        return TraceSummary(
            traceID: spans.first?.traceID.hex ?? "", spans: spans.count, errors: spans.filter(\.isError).count,
            services: Set(spans.map(\.serviceName)).count, startMicros: (spans.map(\.startTimeNanos).min() ?? 0) / 1_000,
            durationMicros: duration(of: spans) / 1_000, rootService: root?.serviceName ?? "", rootOperation: root?.name ?? "")
    }
}
