import Foundation
import Hummingbird
import TraceModel
import TraceStorage

/// `GET /api/meshtrace/graph?lookback=5m[&endTs=<ms>]` on the query port: the live service graph
/// (nodes, edges, estimated rates, error split, p95 latency and Kiali health) for the web UI.
struct GraphAPI: Sendable {
    let store: any TraceStore
    /// With tail sampling on: counts from every span before the decision, for the part of a
    /// window since it was turned on (within the hour it keeps); anything earlier comes from
    /// stored spans, weighted by their adjusted counts.
    var aggregate: REDAggregate? = nil
    /// Spans read per request at most; beyond it the answer says `"truncated":true`.
    var maxSpans = 500_000

    static let maxLookbackNanos: UInt64 = 24 * 3_600 * 1_000_000_000
    /// Spans this long before the window are read too, only to find parents of early spans.
    static let lookBehindNanos: UInt64 = 60 * 1_000_000_000

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/meshtrace/graph") { request, _ in
            do {
                return try await self.graph(QueryParameters(request))
            } catch let failure as HTTPFailure {
                return .json(JaegerQueryAPI.envelope(data: "null", total: 0, errors: [(failure.status.code, failure.message, nil)]), status: failure.status)
            } catch {
                return .json(JaegerQueryAPI.envelope(data: "null", total: 0, errors: [(500, "graph failed: \(error)", nil)]), status: .internalServerError)
            }
        }
    }

    func graph(_ params: QueryParameters) async throws -> Response {
        let lookback = try params.goDurationNanos("lookback") ?? 5 * 60 * 1_000_000_000
        guard lookback > 0, lookback <= Self.maxLookbackNanos else {
            throw HTTPFailure.badRequest("parameter 'lookback' must be between 1s and 24h, like 1m, 5m or 1h")
        }
        let endMs = try params.int64("endTs", min: 1, max: QueryParameters.maxMillis) ?? Int64(WallClock.nowNanos() / 1_000_000)
        let end = UInt64(endMs) * 1_000_000 + 999_999
        let start = end > lookback ? end - lookback : 0
        let readFrom = start > Self.lookBehindNanos ? start - Self.lookBehindNanos : 0
        if let aggregate, let from = aggregate.countsFrom, end > from {
            var counts = aggregate.counts(startNanos: max(start, from), endNanos: end)
            var truncated = false
            if start < from {
                let spans = try await store.spans(startNanos: readFrom, endNanos: from, limit: maxSpans)
                counts.add(GraphCounts.stored(spans, from: start, before: from))
                truncated = spans.count >= maxSpans
            }
            let body = Self.encode(
                counts.graph(), lookbackNanos: lookback, endMs: endMs, truncated: truncated,
                source: start < from ? "mixed" : "pre-sampling", preSamplingFromMs: Int64(from / 1_000_000))
            return .json(body)
        }
        let spans = try await store.spans(startNanos: readFrom, endNanos: end, limit: maxSpans)
        let graph = ServiceGraph(spans: spans, countFrom: start)
        let body = Self.encode(
            graph, lookbackNanos: lookback, endMs: endMs, truncated: spans.count >= maxSpans, source: "stored-spans")
        return .json(body)
    }

    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "0" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(format: "%.4f", value).replacingOccurrences(of: "0+$", with: "", options: .regularExpression)
    }

    static func traffic(_ t: ServiceGraph.Traffic, seconds: Double) -> String {
        "\"requests\":\(number(t.requests)),\"rps\":\(number(t.requests / seconds)),\"spans\":\(t.spans),"
            + "\"errors5xx\":\(number(t.errors5xx)),\"errors4xx\":\(number(t.errors4xx)),"
            + "\"errorsOther\":\(number(t.errorsOther)),\"errorRate\":\(number(t.errorRate)),"
            + "\"health\":\"\(t.health.rawValue)\""
    }

    /// `source`: `pre-sampling` (every span, counted before tail sampling), `stored-spans`, or
    /// `mixed` (stored spans before `preSamplingFromMs`, every span after).
    static func encode(
        _ graph: ServiceGraph, lookbackNanos: UInt64, endMs: Int64, truncated: Bool, source: String = "stored-spans",
        preSamplingFromMs: Int64? = nil
    ) -> String {
        let seconds = Double(lookbackNanos) / 1e9
        let nodes = graph.nodes.map { node in
            "{\"id\":\(JSONString.quote(node.id)),\"name\":\(JSONString.quote(node.id)),\"type\":\"\(node.type.rawValue)\","
                + traffic(node.traffic, seconds: seconds)
                + ",\"p95Ms\":\(number(node.p95Ms)),\"traceIDs\":\(JSONString.array(node.traceIDs.map(\.hex)))}"
        }
        let edges = graph.edges.map { edge in
            "{\"source\":\(JSONString.quote(edge.source)),\"target\":\(JSONString.quote(edge.target)),"
                + "\"protocol\":\(JSONString.quote(edge.protocolName)),"
                + traffic(edge.traffic, seconds: seconds)
                + ",\"p95Ms\":\(number(edge.p95Ms)),\"traceIDs\":\(JSONString.array(edge.traceIDs.map(\.hex)))}"
        }
        return "{\"lookbackMs\":\(lookbackNanos / 1_000_000),\"endTs\":\(endMs),\"spanCount\":\(graph.spanCount),"
            + "\"truncated\":\(truncated),\"source\":\"\(source)\","
            + (preSamplingFromMs.map { "\"preSamplingFromMs\":\($0)," } ?? "") + "\"nodes\":[\(nodes.joined(separator: ","))],"
            + "\"edges\":[\(edges.joined(separator: ","))]}"
    }
}
