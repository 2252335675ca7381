import Foundation
import Hummingbird
import TraceModel
import TraceStorage

/// `GET /api/meshtrace/graph?lookback=5m[&endTs=<ms>]` on the query port: the live service graph
/// (nodes, edges, estimated rates, error split, p95 latency and Kiali health) for the web UI.
/// Its side-panel series and the per-operation graph are in `GraphAPI+Series` and `+Operations`.
struct GraphAPI: Sendable {
    let store: any TraceStore
    /// With tail sampling on: counts from every span before the decision, for the part of a
    /// window since it was turned on (within the hour it keeps); anything earlier comes from
    /// stored spans, weighted by their adjusted counts.
    var aggregate: REDAggregate? = nil
    /// Spans read per request at most; beyond it the answer says `"truncated":true`.
    var maxSpans = 500_000

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/meshtrace/graph") { request, _ in
            await QueryResponder.respond("graph") { try await self.graph(QueryParameters(request)) }
        }
        router.get("/api/meshtrace/graph/series") { request, _ in
            await QueryResponder.respond("graph series") { try QueryResponder.encode(await self.series(QueryParameters(request))) }
        }
        router.get("/api/meshtrace/graph/operations") { request, _ in
            await QueryResponder.respond("operations graph") { try QueryResponder.encode(await self.operations(QueryParameters(request))) }
        }
    }

    func graph(_ params: QueryParameters) async throws -> Response {
        let window = try QueryWindow(params, defaultLookbackNanos: 5 * 60 * 1_000_000_000)
        let (start, end) = (window.startNanos, window.endNanos)
        if let aggregate, let from = aggregate.countsFrom, end > from {
            var counts = aggregate.counts(startNanos: max(start, from), endNanos: end)
            var truncated = false
            if start < from {
                let spans = try await store.spans(startNanos: window.readFromNanos, endNanos: from, limit: maxSpans)
                counts.add(GraphCounts.stored(spans, from: start, before: from))
                truncated = spans.count >= maxSpans
            }
            let body = Self.encode(
                counts.graph(), lookbackNanos: window.lookbackNanos, endMs: window.endMs, truncated: truncated,
                source: start < from ? "mixed" : "pre-sampling", preSamplingFromMs: Int64(from / 1_000_000))
            return .json(body)
        }
        let spans = try await store.spans(startNanos: window.readFromNanos, endNanos: end, limit: maxSpans)
        let graph = ServiceGraph(spans: spans, countFrom: start)
        let body = Self.encode(
            graph, lookbackNanos: window.lookbackNanos, endMs: window.endMs, truncated: spans.count >= maxSpans,
            source: "stored-spans")
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
