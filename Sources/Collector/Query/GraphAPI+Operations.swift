import Hummingbird
import TraceModel
import TraceStorage

/// `GET /api/meshtrace/graph/operations?lookback=5m[&service=S&operation=O][&endTs=<ms>]`: the
/// per-operation dependency graph (`OperationGraph`), focused on one operation when both
/// `service` and `operation` are given. Nodes are numbered; edges refer to them by number.
extension GraphAPI {
    struct OperationsBody: Encodable {
        struct Node: Encodable {
            var id: Int
            var service: String
            var operation: String
            var requests: Double
            var rps: Double
            var errorRate: Double
            var spans: Int
            var p95Ms: Double
            var health: String
            var focus: Bool
        }

        struct Edge: Encodable {
            var source: Int
            var target: Int
            var requests: Double
            var rps: Double
            var errorRate: Double
            var health: String
        }

        struct Focus: Encodable {
            var service: String
            var operation: String
        }

        var lookbackMs: UInt64
        var endTs: Int64
        var spanCount: Int
        var truncated: Bool
        var focus: Focus?
        var nodes: [Node]
        var edges: [Edge]
    }

    func operations(_ params: QueryParameters) async throws -> OperationsBody {
        let window = try QueryWindow(params, defaultLookbackNanos: 5 * 60 * 1_000_000_000)
        let service = params.string("service").flatMap { $0.isEmpty ? nil : $0 }
        let operation = params.string("operation").flatMap { $0.isEmpty ? nil : $0 }
        guard (service == nil) == (operation == nil) else {
            throw HTTPFailure.badRequest("give both 'service' and 'operation' to focus on an operation, or neither")
        }
        let focus = service.flatMap { s in operation.map { OperationGraph.Key(service: s, operation: $0) } }
        let spans = try await store.spans(startNanos: window.readFromNanos, endNanos: window.endNanos, limit: maxSpans)
        let graph = OperationGraph(spans: spans, countFrom: window.startNanos, focus: focus)
        return Self.encode(graph, window: window, focus: focus, truncated: spans.count >= maxSpans)
    }

    static func encode(_ graph: OperationGraph, window: QueryWindow, focus: OperationGraph.Key?, truncated: Bool) -> OperationsBody {
        let seconds = Double(window.lookbackNanos) / 1e9
        var index: [OperationGraph.Key: Int] = [:]
        let nodes = graph.nodes.enumerated().map { i, n in
            index[n.key] = i
            return OperationsBody.Node(
                id: i, service: n.key.service, operation: n.key.operation, requests: n.traffic.requests,
                rps: n.traffic.requests / seconds, errorRate: n.traffic.errorRate, spans: n.traffic.spans, p95Ms: n.p95Ms,
                health: n.traffic.health.rawValue, focus: n.key == focus)
        }
        let edges = graph.edges.compactMap { e -> OperationsBody.Edge? in
            guard let s = index[e.source], let t = index[e.target] else { return nil }
            return OperationsBody.Edge(
                source: s, target: t, requests: e.traffic.requests, rps: e.traffic.requests / seconds,
                errorRate: e.traffic.errorRate, health: e.traffic.health.rawValue)
        }
        return OperationsBody(
            lookbackMs: window.lookbackNanos / 1_000_000, endTs: window.endMs, spanCount: graph.spanCount, truncated: truncated,
            focus: focus.map { OperationsBody.Focus(service: $0.service, operation: $0.operation) }, nodes: nodes, edges: edges)
    }
}
