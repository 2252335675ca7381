import Foundation
import Hummingbird
import TraceAnalysis
import TraceModel
import TraceStorage

/// The propagation doctor on the query port, for `meshtrace analyze` and the UI's Health page:
///
/// - `GET /api/meshtrace/analysis?lookback=15m[&service=S][&endTs=<ms>]`: an `AnalysisReport`
///   (findings with evidence and fixes) over the spans stored in the window.
/// - `GET /api/meshtrace/critical-path/{traceID}`: Jaeger's critical path of one trace, as
///   sections `{spanID, service, name, startMicros, endMicros}`.
struct AnalysisAPI: Sendable {
    let store: any TraceStore
    /// Spans read per analysis at most; beyond it the report says `"truncated":true`.
    var maxSpans = 200_000

    static let maxLookbackNanos: UInt64 = 24 * 3_600 * 1_000_000_000
    /// Spans this long before the window are read too, so the parents of early spans are found
    /// and not reported as orphans.
    static let lookBehindNanos: UInt64 = 60 * 1_000_000_000
    /// Traces with a span that ended this recently may still have spans on their way (sidecars
    /// export about once a second): they are left out rather than reported as broken.
    static let settleNanos: UInt64 = 3 * 1_000_000_000

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/meshtrace/analysis") { request, _ in
            await Self.respond { try await self.analysis(QueryParameters(request)) }
        }
        router.get("/api/meshtrace/critical-path/{traceID}") { _, context in
            await Self.respond { try await self.criticalPath(context.parameters.get("traceID") ?? "") }
        }
    }

    static func respond(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let failure as HTTPFailure {
            return .json(JaegerQueryAPI.envelope(data: "null", total: 0, errors: [(failure.status.code, failure.message, nil)]), status: failure.status)
        } catch {
            return .json(JaegerQueryAPI.envelope(data: "null", total: 0, errors: [(500, "analysis failed: \(error)", nil)]), status: .internalServerError)
        }
    }

    func analysis(_ params: QueryParameters) async throws -> Response {
        let lookback = try params.goDurationNanos("lookback") ?? 15 * 60 * 1_000_000_000
        guard lookback > 0, lookback <= Self.maxLookbackNanos else {
            throw HTTPFailure.badRequest("parameter 'lookback' must be between 1s and 24h, like 5m, 15m or 1h")
        }
        let now = WallClock.nowNanos()
        let endMs = try params.int64("endTs", min: 1, max: QueryParameters.maxMillis) ?? Int64(now / 1_000_000)
        let end = min(UInt64(endMs) * 1_000_000 + 999_999, now)
        let start = end > lookback ? end - lookback : 0
        let readFrom = start > Self.lookBehindNanos ? start - Self.lookBehindNanos : 0
        let spans = try await store.spans(startNanos: readFrom, endNanos: end, limit: maxSpans)
        let settled = end > Self.settleNanos ? end - Self.settleNanos : 0
        // Whole traces only: one that began inside the window and has had time to arrive.
        let traces = TraceAnalyzer.traces(from: spans).filter { trace in
            guard let first = trace.first?.startTimeNanos else { return false }
            let lastEnd = trace.map(\.endTimeNanos).max() ?? 0
            return first >= start && lastEnd <= settled
        }
        var options = AnalysisOptions()
        if let service = params.string("service"), !service.isEmpty { options.service = service }
        let findings = TraceAnalyzer.analyze(traces, options: options)
        let services = Set(traces.joined().map(\.serviceName)).sorted()
        let report = AnalysisReport(
            windowStartMs: Int64(start / 1_000_000), windowEndMs: Int64(end / 1_000_000), traces: traces.count,
            spans: traces.reduce(0) { $0 + $1.count }, services: services, truncated: spans.count >= maxSpans, findings: findings)
        return try Self.encode(report)
    }

    func criticalPath(_ hex: String) async throws -> Response {
        guard let id = TraceID(hex: hex) else { throw HTTPFailure.badRequest("trace id must be 1-32 hex digits, got '\(hex)'") }
        let trace = try await store.trace(id: id)
        guard !trace.isEmpty else { throw HTTPFailure(status: .notFound, message: "trace \(hex) not found") }
        let body = CriticalPathReport(traceID: id.hex, sections: CriticalPath.compute(trace: trace))
        return try Self.encode(body)
    }

    static func encode(_ value: some Encodable) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return .json(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}
