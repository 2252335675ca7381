import MeshtraceTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOPosix
import Testing
@testable import SidecarProxy

/// Retries across a service's endpoints, HTTP/1 and HTTP/2 alike, through a real sidecar: a
/// retryable status and a per-try timeout move the request to the endpoint it has not tried
/// and the client sees the good answer; a body past the replay limit is not retried. Round-robin
/// makes the first attempt go to the first (failing) endpoint.
@Suite(.serialized) struct RetryAcrossEndpointsTests {
    let group = MultiThreadedEventLoopGroup.singleton

    func sidecar(to ports: [Int], timers: any RequestTimers = EventLoopTimers(), _ edit: (inout SidecarConfiguration) -> Void = { _ in })
        async throws -> TestSidecar
    {
        try await TestSidecar.start(group: group, timers: timers) { c in
            c.serviceName = "frontend"
            c.appPort = nil
            c.upstreams = [UpstreamService(name: "reports", endpoints: ports.map { UpstreamEndpoint(host: "127.0.0.1", port: $0) })]
            c.defaultUpstream = "reports"
            c.loadBalancer = .roundRobin
            edit(&c)
        }
    }

    /// A 503 from the first endpoint, for a plain HTTP/2 call and a gRPC call: dropped before
    /// the client sees it, and the call answered by the other endpoint.
    @Test func http2A503IsRetriedOnTheOtherEndpoint() async throws {
        let bad = try await HTTP2RelayTests.App(group: group, answer: .status("503"))
        let good = try await HTTP2RelayTests.App(group: group)
        let proxy = try await sidecar(to: [bad.port, good.port])
        let client = try await HTTP2RelayTests.Client.connect(group: group, port: proxy.outboundPort)
        defer { Task { await client.close(); await proxy.stop(); await bad.close(); await good.close() } }
        let plain = try await client.call(HTTP2ParityTests.plainCall("/plain"))
        #expect(plain.status == "200" && String(buffer: plain.body) == "hello")
        let grpc = try await client.call(HTTP2RelayTests.grpcCall("/echo.Echo/Say"), body: "hi")
        #expect(grpc.status == "200" && grpc.grpcStatus == "0" && String(buffer: grpc.body) == "hi", "the request body sent again whole")
        #expect(bad.seen.withLockedValue { $0.count } == 2 && good.seen.withLockedValue { $0.count } == 2)
        #expect(await eventually { proxy.hops(.outbound).count == 2 })
        for hop in proxy.hops(.outbound) {
            #expect(hop.retries == 1 && hop.statusCode == 200 && hop.responseFlags.isEmpty, "\(hop.path): \(hop.retries) \(hop.responseFlags)")
            #expect(hop.upstreamAddress == "127.0.0.1:\(good.port)", "the span names the endpoint that answered")
        }
        let set = try #require(proxy.server.endpointSets.all.first)
        #expect(set.stats[0].errors == 2, "each 503 counted for outlier detection")
    }

    /// Envoy retries only a request that fit its buffer: a gRPC body of exactly the replay
    /// limit is retried, one byte more is not (the client gets the 503).
    @Test func http2ABodyPastTheReplayLimitIsNotRetried() async throws {
        let bad = try await HTTP2RelayTests.App(group: group, answer: .status("503"))
        let good = try await HTTP2RelayTests.App(group: group)
        let proxy = try await sidecar(to: [bad.port, good.port])
        let client = try await HTTP2RelayTests.Client.connect(group: group, port: proxy.outboundPort)
        defer { Task { await client.close(); await proxy.stop(); await bad.close(); await good.close() } }
        let fits = String(repeating: "f", count: RetryPolicy.replayLimit)
        let kept = try await client.call(HTTP2RelayTests.grpcCall("/echo.Echo/Say"), body: fits)
        #expect(kept.status == "200" && kept.grpcStatus == "0" && kept.body.readableBytes == fits.utf8.count)
        let tooBig = String(repeating: "b", count: RetryPolicy.replayLimit + 1)
        let passed = try await client.call(HTTP2RelayTests.grpcCall("/echo.Echo/Say"), body: tooBig)
        #expect(passed.status == "503")
        #expect(bad.seen.withLockedValue { $0.count } == 2 && good.seen.withLockedValue { $0.count } == 1)
        #expect(await eventually { proxy.hops(.outbound).count == 2 })
        #expect(proxy.hops(.outbound).map(\.retries).sorted() == [0, 1])
        #expect(proxy.hops(.outbound).first { $0.retries == 0 }?.statusCode == 503)
    }

    /// The first endpoint never answers: after the per-try timeout (on the test's clock) the
    /// call goes to the other endpoint, well before the request timeout.
    @Test func http2APerTryTimeoutIsRetriedOnTheOtherEndpoint() async throws {
        let silent = try await HTTP2RelayTests.App(group: group, answer: .silent)
        let good = try await HTTP2RelayTests.App(group: group)
        let timers = ManualRequestTimers()
        let proxy = try await sidecar(to: [silent.port, good.port], timers: timers) { $0.perTryTimeoutMillis = 100 }
        let client = try await HTTP2RelayTests.Client.connect(group: group, port: proxy.outboundPort)
        defer { Task { await client.close(); await proxy.stop(); await silent.close(); await good.close() } }
        async let call = within(.seconds(60), "the retried call") {
            try await client.call(HTTP2RelayTests.grpcCall("/echo.Echo/Say"), body: "late")
        }
        #expect(await eventually { silent.seen.withLockedValue { $0.count } == 1 })
        #expect(await eventually { timers.pendingCount == 2 }, "the request timeout and the per-try timeout")
        #expect(await timers.advance(by: .milliseconds(99)) == 0)
        #expect(await timers.advance(by: .milliseconds(1)) == 1)
        let response = try await call
        #expect(response.grpcStatus == "0" && String(buffer: response.body) == "late", "\(response.headers) \(proxy.hops(.outbound).map { "\($0.responseFlags) \($0.failureReason ?? "")" })")
        #expect(good.seen.withLockedValue { $0.count } == 1)
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        let hop = try #require(proxy.hops(.outbound).first)
        #expect(hop.retries == 1 && hop.responseFlags.isEmpty && hop.upstreamAddress == "127.0.0.1:\(good.port)")
    }

    /// HTTP/1's per-try timeout, the same way: the silent endpoint's attempt is dropped and the
    /// request answered by the other one.
    @Test func http1APerTryTimeoutIsRetriedOnTheOtherEndpoint() async throws {
        let silent = try await SilentServer(group: group)
        let good = try await EchoApp(group: group)
        let timers = ManualRequestTimers()
        let proxy = try await sidecar(to: [silent.port, good.port], timers: timers) { $0.perTryTimeoutMillis = 100 }
        let client = try await TestClient(group: group, port: proxy.outboundPort)
        defer { Task { await client.close(); await proxy.stop(); await silent.close(); await good.close() } }
        async let reply = within(.seconds(60), "the retried request") { try await client.send(.GET, "http://reports/n/1") }
        #expect(await eventually { silent.accepted.withLockedValue { $0 } == 1 })
        #expect(await eventually { timers.pendingCount == 2 }, "the request timeout and the per-try timeout")
        #expect(await timers.advance(by: .milliseconds(99)) == 0)
        #expect(await timers.advance(by: .milliseconds(1)) == 1)
        let r = try await reply
        #expect(r.status == 200 && good.requestCount == 1)
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        let hop = try #require(proxy.hops(.outbound).first)
        #expect(hop.retries == 1 && hop.responseFlags.isEmpty && hop.upstreamAddress == "127.0.0.1:\(good.port)")
    }
}

/// Accepts connections and never answers: an endpoint that hangs.
final class SilentServer: Sendable {
    let channel: any Channel
    let accepted = NIOLockedValueBox(0)
    var port: Int { channel.localAddress?.port ?? 0 }

    init(group: any EventLoopGroup) async throws {
        let accepted = self.accepted
        channel = try await ServerBootstrap(group: group)
            .childChannelInitializer { channel in
                accepted.withLockedValue { $0 += 1 }
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func close() async { try? await channel.close() }
}
