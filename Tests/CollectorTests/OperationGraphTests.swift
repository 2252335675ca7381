import Testing
import TraceModel
import TraceStorage

@testable import Collector

/// web:GET /a -> api:q1 -> db:SELECT and web:GET /z -> api:q2 -> db:SELECT, plus api:q1 -> cache:GET.
private func calls(rate: Double? = nil) -> [Span] {
    var spans: [Span] = []
    for i in 0..<10 {
        let t = UInt64(i + 1), start = t0 + UInt64(i) * 100 * ms
        let first = i % 2 == 0
        spans += [
            sp(t, 1, kind: .server, service: "web", start: start, durationMs: 50, rate: rate, name: first ? "GET /a" : "GET /z"),
            sp(t, 2, parent: 1, kind: .server, service: "api", start: start + ms, durationMs: 40, status: i == 0 ? 500 : 200, rate: rate, name: first ? "q1" : "q2"),
            sp(t, 3, parent: 2, kind: .client, service: "db", start: start + 2 * ms, durationMs: 10, rate: rate, name: "SELECT"),
        ]
        if first { spans.append(sp(t, 4, parent: 2, kind: .client, service: "cache", start: start + 3 * ms, durationMs: 1, rate: rate, name: "GET")) }
    }
    return spans
}

@Suite struct OperationGraphTests {
    private func key(_ s: String, _ o: String) -> OperationGraph.Key { .init(service: s, operation: o) }

    @Test func nodesPerOperationAndWeightedCalls() throws {
        let g = OperationGraph(spans: calls(rate: 0.5))
        #expect(g.nodes.map { "\($0.key.service):\($0.key.operation)" } == ["api:q1", "api:q2", "cache:GET", "db:SELECT", "web:GET /a", "web:GET /z"])
        let edges = Dictionary(uniqueKeysWithValues: g.edges.map { ("\($0.source.operation)>\($0.target.operation)", $0) })
        #expect(Set(edges.keys) == ["GET /a>q1", "GET /z>q2", "q1>SELECT", "q2>SELECT", "q1>GET"])
        #expect(edges["q1>SELECT"]?.traffic.requests == 10)  // 5 spans at 50% sampling
        #expect(edges["GET /a>q1"]?.traffic.errorRate == 0.2)
        let q1 = try #require(g.nodes.first { $0.key == key("api", "q1") })
        #expect(q1.traffic.requests == 10 && q1.p95Ms == 40)
        #expect(g.spanCount == 35)
    }

    @Test func focusKeepsOnlyPathsThroughTheOperation() {
        let g = OperationGraph(spans: calls(), focus: key("api", "q1"))
        #expect(g.nodes.map(\.key.operation) == ["q1", "GET", "SELECT", "GET /a"])
        #expect(g.edges.count == 3)
        // db:SELECT is reached from q2 as well, but only the calls under q1 count.
        #expect(g.nodes.first { $0.key == key("db", "SELECT") }?.traffic.requests == 5)
        #expect(OperationGraph(spans: calls(), focus: key("api", "nope")).nodes.isEmpty)
    }

    @Test func apiNumbersNodesAndValidatesTheFocus() async throws {
        let store = InMemoryTraceStore()
        try await store.write(calls())
        let api = GraphAPI(store: store)
        let end = Int64((t0 + 10_000 * ms) / ms)
        let body = try await api.operations(QueryParameters(query: "lookback=1m&endTs=\(end)&service=api&operation=q2"))
        #expect(body.focus?.operation == "q2")
        #expect(body.nodes.filter(\.focus).map(\.operation) == ["q2"])
        #expect(body.nodes.map(\.id) == Array(0..<body.nodes.count))
        #expect(body.edges.allSatisfy { $0.source < body.nodes.count && $0.target < body.nodes.count })
        await #expect(throws: HTTPFailure.self) { try await api.operations(QueryParameters(query: "service=api")) }
    }
}
