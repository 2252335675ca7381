import MeshtraceTesting
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOPosix
import Testing
@testable import SidecarProxy

/// A service with several endpoints through a real sidecar: requests spread, a failing
/// endpoint's requests retried on another and the endpoint ejected, for HTTP/1 and HTTP/2,
/// both through the one `EndpointSet`.
@Suite(.serialized) struct BalancingProxyTests {
    let group = MultiThreadedEventLoopGroup.singleton

    func outbound(to ports: [Int], _ configure: (inout SidecarConfiguration) -> Void = { _ in }) async throws -> TestSidecar {
        try await TestSidecar.start(group: group) { c in
            c.serviceName = "frontend"
            c.upstreams = [UpstreamService(name: "backend", endpoints: ports.map { UpstreamEndpoint(host: "127.0.0.1", port: $0) })]
            configure(&c)
        }
    }

    @Test func requestsSpreadOverEveryEndpoint() async throws {
        let apps = [try await EchoApp(group: group), try await EchoApp(group: group), try await EchoApp(group: group)]
        let sidecar = try await outbound(to: apps.map(\.port))
        defer { Task { for app in apps { await app.close() }; await sidecar.stop() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        for i in 0..<60 {
            let r = try await client.send(.GET, "http://backend/n/\(i)")
            #expect(r.status == 200)
        }
        await client.close()
        let counts = apps.map(\.requestCount)
        #expect(counts.reduce(0, +) == 60)
        #expect(counts.allSatisfy { $0 >= 5 }, "per endpoint: \(counts)")
        // Each span names the endpoint it reached.
        #expect(await eventually { sidecar.hops(.outbound).count == 60 })
        let used = Dictionary(grouping: sidecar.hops(.outbound), by: { $0.upstreamAddress ?? "-" }).mapValues(\.count)
        #expect(used == Dictionary(uniqueKeysWithValues: apps.map { ("127.0.0.1:\($0.port)", $0.requestCount) }))
    }

    /// One endpoint answers 503: each request that lands there is retried on another endpoint
    /// (the client sees 200), and after 5 in a row the endpoint is ejected and gets no more.
    @Test func aFailingEndpointIsRetriedElsewhereAndEjected() async throws {
        let good = [try await EchoApp(group: group), try await EchoApp(group: group)]
        let bad = try await EchoApp(group: group, status: .serviceUnavailable)
        let sidecar = try await outbound(to: good.map(\.port) + [bad.port]) { $0.maxRetries = 1 }
        defer { Task { for app in good + [bad] { await app.close() }; await sidecar.stop() } }
        let client = try await TestClient(group: group, port: sidecar.outboundPort)
        for i in 0..<60 {
            let r = try await client.send(.GET, "http://backend/n/\(i)")
            #expect(r.status == 200, "request \(i)")
        }
        await client.close()
        #expect(bad.requestCount == 5, "ejected after 5 consecutive 503s")
        let set = try #require(sidecar.server.endpointSets.all.first)
        #expect(set.stats[2].ejected && set.stats[2].ejections == 1 && set.stats[2].errors == 5)
        #expect(await eventually { sidecar.hops(.outbound).count == 60 })
        let retried = sidecar.hops(.outbound).filter { $0.retries > 0 }
        #expect(retried.count == 5)
        #expect(retried.allSatisfy { $0.upstreamAddress != "127.0.0.1:\(bad.port)" })
        let metrics = try await rawExchange(group: group, port: sidecar.adminPort, "GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        #expect(metrics.contains("endpoint.127.0.0.1:\(bad.port).ejected: 1"), "\(metrics)")
    }

    /// HTTP/2 balances connections: a connect refused by one endpoint is retried on the other.
    @Test func http2ConnectRetriesMoveToAnotherEndpoint() async throws {
        let app = try await HTTP2RelayTests.App(group: group)
        let dead = try refusingPort()
        let sidecar = try await TestSidecar.start(group: group) { c in
            c.serviceName = "frontend"
            c.appPort = nil
            c.upstreams = [UpstreamService(name: "reports", endpoints: [
                UpstreamEndpoint(host: "127.0.0.1", port: dead), UpstreamEndpoint(host: "127.0.0.1", port: app.port),
            ])]
            c.defaultUpstream = "reports"
            c.maxRetries = 1
        }
        defer { Task { await app.close(); await sidecar.stop() } }
        for _ in 0..<12 {
            let client = try await HTTP2RelayTests.Client.connect(group: group, port: sidecar.outboundPort)
            let r = try await client.call(HTTP2ParityTests.plainCall("/plain"))
            #expect(r.status == "200")
            await client.close()
        }
        let set = try #require(sidecar.server.endpointSets.all.first)
        #expect(set.stats[1].total >= 12)
        #expect(set.stats[0].errors >= 1, "the dead endpoint was tried and counted")
        #expect(await eventually { sidecar.hops(.outbound).count == 12 })
        #expect(sidecar.hops(.outbound).allSatisfy { $0.upstreamAddress == "127.0.0.1:\(app.port)" })
    }
}
