import Testing
import TraceModel

@testable import Collector

@Suite struct ServiceGraphTests {
    @Test func buildsNodesAndEdgesOfAMesh() throws {
        let g = ServiceGraph(spans: mesh())
        let nodes = Dictionary(uniqueKeysWithValues: g.nodes.map { ($0.id, $0) })
        #expect(nodes["ingress"]?.type == .gateway)
        #expect(nodes["frontend"]?.type == .service)
        #expect(nodes["payments"]?.type == .service)
        #expect(nodes["api.stripe.example"]?.type == .external)
        #expect(nodes["unknown"] == nil)  // the gateway is the traffic source
        let edges = Dictionary(uniqueKeysWithValues: g.edges.map { ("\($0.source)>\($0.target)", $0) })
        #expect(Set(edges.keys) == ["ingress>frontend", "frontend>orders", "frontend>payments", "frontend>api.stripe.example"])
        let pay = try #require(edges["frontend>payments"])
        #expect(pay.traffic.requests == 20)
        #expect(pay.traffic.errors5xx == 5)
        #expect(pay.traffic.errorRate == 0.25)
        #expect(pay.traffic.health == .failure)
        #expect(pay.protocolName == "http")
        #expect(pay.p95Ms == 20)
        #expect(edges["frontend>orders"]?.traffic.health == .healthy)
        // 20 client spans of 10..29 ms: the 19th smallest (95%) is 28 ms.
        #expect(edges["frontend>orders"]?.p95Ms == 28)
        #expect(nodes["payments"]?.traffic.health == .failure)
        #expect(nodes["orders"]?.traffic.health == .healthy)
        #expect(pay.traceIDs.count == ServiceGraph.maxTraceIDs)
        #expect(pay.traceIDs.first == TraceID(high: 0, low: 20))  // newest first
        #expect(g.spanCount == 20 * 4)
    }

    @Test func samplingRateScalesCountsNotRatios() throws {
        let g = ServiceGraph(spans: mesh(requests: 20, rate: 0.1))
        let pay = try #require(g.edges.first { $0.source == "frontend" && $0.target == "payments" })
        #expect(abs(pay.traffic.requests - 200) < 1e-6)
        #expect(abs(pay.traffic.errors5xx - 50) < 1e-6)
        #expect(abs(pay.traffic.errorRate - 0.25) < 1e-9)
        #expect(pay.traffic.spans == 20)
        let json = GraphAPI.encode(g, lookbackNanos: 60_000_000_000, endMs: 1, truncated: false)
        #expect(json.contains("\"source\":\"frontend\",\"target\":\"payments\",\"protocol\":\"http\",\"requests\":200,\"rps\":3.3333"))
    }

    @Test func weightIgnoresInvalidRates() {
        #expect(ServiceGraph.weight(of: sp(1, 1, kind: .server, service: "a")) == 1)
        #expect(ServiceGraph.weight(of: sp(1, 1, kind: .server, service: "a", rate: 0.25)) == 4)
        #expect(ServiceGraph.weight(of: sp(1, 1, kind: .server, service: "a", rate: 0)) == 1)
        #expect(ServiceGraph.weight(of: sp(1, 1, kind: .server, service: "a", rate: 1.5)) == 1)
    }

    @Test func serverWithoutClientParentComesFromUnknown() throws {
        let spans = [
            sp(1, 1, kind: .server, service: "api", status: 200),
            sp(2, 1, kind: .server, service: "api", status: 404),
            sp(3, 9, parent: 8, kind: .server, service: "api", status: 200),  // parent never reported
        ]
        let g = ServiceGraph(spans: spans)
        #expect(g.nodes.map(\.id) == ["api", "unknown"])
        #expect(g.nodes.first { $0.id == "unknown" }?.type == .unknown)
        let edge = try #require(g.edges.first)
        #expect(edge.source == "unknown" && edge.target == "api")
        #expect(edge.traffic.requests == 3)
        #expect(edge.traffic.errors4xx == 1)
        #expect(edge.traffic.health == .failure)  // 33% 4xx
    }

    @Test func serverUnderAnotherServicesInternalSpanLinksThatService() throws {
        let spans = [
            sp(1, 1, kind: .internal, service: "batch"),
            sp(1, 2, parent: 1, kind: .server, service: "api", status: 200),
        ]
        let g = ServiceGraph(spans: spans)
        #expect(g.edges.map { "\($0.source)>\($0.target)" } == ["batch>api"])
    }

    @Test func zipkinSharedServerSpanPairsWithItsClient() throws {
        let spans = [
            sp(1, 5, kind: .client, service: "web", status: 200, peer: "db"),
            sp(1, 5, kind: .server, service: "db", status: 200, shared: true),
        ]
        let g = ServiceGraph(spans: spans)
        #expect(g.edges.map { "\($0.source)>\($0.target)" } == ["web>db"])
        #expect(g.nodes.first { $0.id == "db" }?.type == .service)
    }

    @Test func onlySpansFromTheWindowAreCountedButParentsAreFound() throws {
        let spans = [
            sp(1, 1, kind: .client, service: "web", start: t0, peer: "api"),  // before the window
            sp(1, 2, parent: 1, kind: .server, service: "api", start: t0 + 10 * ms),
            sp(2, 1, kind: .client, service: "web", start: t0 + 20 * ms, peer: "api"),
            sp(2, 2, parent: 1, kind: .server, service: "api", start: t0 + 21 * ms),
        ]
        let g = ServiceGraph(spans: spans, countFrom: t0 + 5 * ms)
        // Trace 1's client started before the window: its server span is paired, not "unknown",
        // and not counted; trace 2 counts once.
        #expect(g.edges.map { "\($0.source)>\($0.target)" } == ["web>api"])
        #expect(g.edges.first?.traffic.requests == 1)
    }

    @Test func grpcAndStatusErrorsCountAsServerSideErrors() {
        var grpc = sp(1, 1, kind: .server, service: "a")
        grpc.attributes = [Attribute("rpc.system", .string("grpc")), Attribute("rpc.grpc.status_code", .int(14))]
        #expect(ServiceGraph.outcome(of: grpc) == .otherError)
        #expect(ServiceGraph.protocolName(of: grpc) == "grpc")
        #expect(ServiceGraph.outcome(of: sp(1, 1, kind: .server, service: "a", error: true)) == .otherError)
        #expect(ServiceGraph.outcome(of: sp(1, 1, kind: .server, service: "a", status: 302)) == .ok)
    }

    /// Kiali's defaults: any 5xx degraded, >= 10% failure; 4xx degraded >= 10%, failure >= 20%.
    @Test(arguments: [
        (0.0, 0.0, ServiceGraph.Health.healthy),
        (0.001, 0.0, .degraded), (0.0999, 0.0, .degraded), (0.10, 0.0, .failure),
        (0.0, 0.0999, .healthy), (0.0, 0.10, .degraded), (0.0, 0.1999, .degraded), (0.0, 0.20, .failure),
    ])
    func kialiHealthThresholds(fiveXX: Double, fourXX: Double, expected: ServiceGraph.Health) {
        #expect(ServiceGraph.Health.of(requests: 10_000, errors5xx: fiveXX * 10_000, errors4xx: fourXX * 10_000, errorsOther: 0) == expected)
    }

    @Test func idleWithoutRequests() {
        #expect(ServiceGraph.Health.of(requests: 0, errors5xx: 0, errors4xx: 0, errorsOther: 0) == .idle)
        #expect(ServiceGraph.Health.of(requests: 10, errors5xx: 0, errors4xx: 0, errorsOther: 1) == .failure)
    }

    @Test func weightedQuantile() {
        #expect(ServiceGraph.weightedQuantile([], 0.95) == 0)
        #expect(ServiceGraph.weightedQuantile([(1, 1), (2, 1), (100, 1)], 0.5) == 2)
        // A heavy sample dominates.
        #expect(ServiceGraph.weightedQuantile([(1, 99), (100, 1)], 0.95) == 1)
    }
}
