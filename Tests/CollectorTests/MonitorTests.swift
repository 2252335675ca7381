import Testing
import TraceModel
import TraceStorage

@testable import Collector

@Suite struct MonitorTests {
    /// One minute from t0: the mesh's 20 requests, 100 ms apart, are inside it.
    private let window = QueryWindow(startNanos: t0, endNanos: t0 + 60_000 * ms, lookbackNanos: 60_000 * ms, endMs: Int64((t0 + 60_000 * ms) / ms))

    @Test func serverSpansPerServiceScaledBySamplingRate() throws {
        let r = MonitorAPI.compute(spans: mesh(rate: 0.1), kind: .server, kindName: "server", service: "payments", window: window, stepNanos: 10_000 * ms)
        #expect(r.services.map(\.name) == ["frontend", "orders", "payments"])  // ingress only has client spans
        let pay = try #require(r.services.first { $0.name == "payments" })
        #expect(abs(pay.summary.requests - 200) < 1e-9)
        #expect(abs(pay.summary.rps - 200.0 / 60) < 1e-9)
        #expect(pay.summary.errorRate == 0.25)
        #expect(pay.summary.p95Ms == 18)
        #expect(pay.series.count == 6)
        #expect(abs(pay.series[0].requests - 200) < 1e-9)  // 2 s of traffic: all in the first 10 s bucket
        #expect(r.operations.map(\.name) == ["GET /"])
        let clients = MonitorAPI.compute(spans: mesh(), kind: .client, kindName: "client", service: nil, window: window, stepNanos: 10_000 * ms)
        #expect(clients.services.map(\.name) == ["frontend", "ingress"])
    }

    /// The monitor page and the graph must show one number for a service's rate.
    @Test func serviceRatesAreTheGraphNodesRates() throws {
        let spans = mesh(rate: 0.1)
        let graph = ServiceGraph(spans: spans, countFrom: window.startNanos)
        let red = MonitorAPI.compute(spans: spans, kind: .server, kindName: "server", service: nil, window: window, stepNanos: 10_000 * ms)
        for s in red.services {
            let node = try #require(graph.nodes.first { $0.id == s.name })
            #expect(abs(node.traffic.requests / 60 - s.summary.rps) < 1e-9, "\(s.name)")
            #expect(abs(node.traffic.errorRate - s.summary.errorRate) < 1e-9, "\(s.name)")
        }
    }

    @Test func apiReadsTheStoreAndNamesBadParameters() async throws {
        let store = InMemoryTraceStore()
        try await store.write(mesh(rate: 0.5))
        let api = MonitorAPI(store: store)
        let end = Int64((t0 + 30_000 * ms) / ms)
        let body = try await api.monitor(QueryParameters(query: "lookback=1m&endTs=\(end)&service=frontend&points=6"))
        #expect(body.stepMs == 10_000 && body.spanKind == "server" && body.spanCount == 60)
        #expect(body.services.count == 3 && body.operations?.map(\.name) == ["GET /"])
        #expect(abs((body.operations?.first?.summary.requests ?? 0) - 40) < 1e-9)
        for (query, field) in [("spanKind=sideways", "spanKind"), ("lookback=forever", "lookback"), ("lookback=48h", "lookback"), ("points=1", "points")] {
            do {
                _ = try await api.monitor(QueryParameters(query: query))
                Issue.record("\(query) was accepted")
            } catch let failure as HTTPFailure {
                #expect(failure.status == .badRequest && failure.message.contains(field), "\(failure.message)")
            }
        }
    }

    @Test func graphSeriesSumsToTheGraphsNumbers() async throws {
        let store = InMemoryTraceStore()
        try await store.write(mesh(rate: 0.1))
        let api = GraphAPI(store: store)
        let end = Int64((t0 + 30_000 * ms) / ms)
        let graph = ServiceGraph(spans: mesh(rate: 0.1), countFrom: t0 + 30_000 * ms - 60_000 * ms)
        let node = try await api.series(QueryParameters(query: "lookback=1m&endTs=\(end)&node=payments&points=12"))
        #expect(node.series.count == 12 && node.stepMs == 5_000)
        let payments = try #require(graph.nodes.first { $0.id == "payments" })
        #expect(abs(node.series.reduce(0) { $0 + $1.requests } - payments.traffic.requests) < 1e-9)
        #expect(abs(node.summary.errorRate - payments.traffic.errorRate) < 1e-9)
        // A node nobody calls (the gateway) is measured on what it sends, as in the graph.
        let ingress = try await api.series(QueryParameters(query: "lookback=1m&endTs=\(end)&node=ingress"))
        #expect(abs(ingress.summary.requests - 200) < 1e-9)
        let edge = try await api.series(QueryParameters(query: "lookback=1m&endTs=\(end)&from=frontend&to=orders"))
        let orders = try #require(graph.edges.first { $0.source == "frontend" && $0.target == "orders" })
        #expect(abs(edge.summary.requests - orders.traffic.requests) < 1e-9)
        #expect(edge.summary.p95Ms == orders.p95Ms)
        await #expect(throws: HTTPFailure.self) { try await api.series(QueryParameters(query: "lookback=1m")) }
    }
}
