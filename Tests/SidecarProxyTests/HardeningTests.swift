import Foundation
import MeshtraceTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

/// Bad input is refused with the right status and never reaches an upstream.
@Suite(.serialized) struct HardeningTests {
    let group = MultiThreadedEventLoopGroup.singleton

    func sidecar(_ configure: (inout SidecarConfiguration) -> Void = { _ in }) async throws -> (EchoApp, TestSidecar) {
        let app = try await EchoApp(group: group)
        let s = try await TestSidecar.start(group: group) { c in
            c.serviceName = "backend"
            c.appPort = app.port
            c.outboundPort = -1
            configure(&c)
        }
        return (app, s)
    }

    @Test(arguments: [
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n",
        "NOT A REQUEST\r\n\r\n",
    ])
    func smugglingAndMalformedRequestsGet400(request: String) async throws {
        let (app, s) = try await sidecar()
        defer { Task { await s.stop(); await app.close() } }
        let raw = try await rawExchange(group: group, port: s.inboundPort, request)
        #expect(raw.hasPrefix("HTTP/1.1 400"), "\(request.debugDescription) -> \(raw.debugDescription)")
        #expect(raw.lowercased().contains("connection: close"))
        #expect(app.requests.withLockedValue { $0.count } == 0, "nothing reaches the app")
    }

    @Test func oversizedHeaderBlockGets431() async throws {
        let (app, s) = try await sidecar()
        defer { Task { await s.stop(); await app.close() } }
        let big = String(repeating: "a", count: 70 * 1024)
        let raw = try await rawExchange(group: group, port: s.inboundPort, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: \(big)\r\n\r\n")
        #expect(raw.hasPrefix("HTTP/1.1 431"), "\(raw.prefix(200))")
        // Many headers that add up past 64 KiB.
        let many = (0..<100).map { "X-H\($0): \(String(repeating: "b", count: 700))\r\n" }.joined()
        let raw2 = try await rawExchange(group: group, port: s.inboundPort, "GET / HTTP/1.1\r\nHost: a\r\n\(many)\r\n")
        #expect(raw2.hasPrefix("HTTP/1.1 431"), "\(raw2.prefix(200))")
        // Just under the limit is fine.
        let ok = try await rawExchange(group: group, port: s.inboundPort,
                                       "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nX-Big: \(String(repeating: "c", count: 60 * 1024))\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200"), "\(ok.prefix(200))")
    }

    @Test func slowHeadersHitTheHeaderTimeout() async throws {
        let (app, s) = try await sidecar { $0.headerTimeoutMillis = 200 }
        defer { Task { await s.stop(); await app.close() } }
        let (raw, closedByServer) = try await rawExchangeUntilClosed(group: group, port: s.inboundPort, "GET / HTTP/1.1\r\nHost: a\r\n")
        #expect(raw.hasPrefix("HTTP/1.1 408"), "\(raw)")
        #expect(closedByServer, "closed by the header timeout, not the test's")
    }

    @Test func idleConnectionsAreClosed() async throws {
        let (app, s) = try await sidecar { $0.idleTimeoutMillis = 200 }
        defer { Task { await s.stop(); await app.close() } }
        let (raw, closedByServer) = try await rawExchangeUntilClosed(group: group, port: s.inboundPort, "")
        #expect(raw.isEmpty)
        #expect(closedByServer, "closed by the idle timeout, not the test's")
    }

    @Test func stalledBodyGets408() async throws {
        let (app, s) = try await sidecar { $0.idleTimeoutMillis = 300 }
        defer { Task { await s.stop(); await app.close() } }
        let raw = try await rawExchange(group: group, port: s.inboundPort, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nonly-part")
        #expect(raw.hasPrefix("HTTP/1.1 408"), "\(raw)")
        #expect(await eventually { s.hops(.inbound).first?.responseFlags == ["SI"] })
    }

    @Test func connectionCapRefusesExtraConnections() async throws {
        let (app, s) = try await sidecar { $0.maxDownstreamConnections = 2 }
        defer { Task { await s.stop(); await app.close() } }
        let a = try await TestClient(group: group, port: s.inboundPort)
        let b = try await TestClient(group: group, port: s.inboundPort)
        #expect(try await a.send(.GET, "/a").status == 200)
        #expect(try await b.send(.GET, "/b").status == 200)
        let (raw, closedByServer) = try await rawExchangeUntilClosed(group: group, port: s.inboundPort, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(raw.isEmpty && closedByServer, "third connection is closed without an answer")
        await a.close()
        #expect(await eventually { s.server.connections.count == 1 })
        let ok = try await rawExchange(group: group, port: s.inboundPort, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(ok.hasPrefix("HTTP/1.1 200"))
        await b.close()
    }

    @Test func responseHopByHopHeadersAreStrippedAndFramingKept() async throws {
        let (app, s) = try await sidecar()
        defer { Task { await s.stop(); await app.close() } }
        let raw = try await rawExchange(group: group, port: s.inboundPort, "GET /stream?chunks=3&size=10 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        #expect(raw.hasPrefix("HTTP/1.1 200"))
        #expect(raw.lowercased().contains("transfer-encoding: chunked"))
        #expect(raw.hasSuffix("0\r\n\r\n"))
        // HTTP/1.0 client: no chunked encoding, the close ends the body.
        let raw10 = try await rawExchange(group: group, port: s.inboundPort, "GET /stream?chunks=3&size=10 HTTP/1.0\r\nHost: a\r\n\r\n")
        #expect(raw10.hasPrefix("HTTP/1.0 200"), "\(raw10)")
        #expect(!raw10.lowercased().contains("chunked"))
        #expect(raw10.hasSuffix(String(repeating: "x", count: 30)))
    }

    @Test func headRequestsHaveNoBody() async throws {
        let (app, s) = try await sidecar()
        defer { Task { await s.stop(); await app.close() } }
        let raw = try await rawExchange(group: group, port: s.inboundPort,
                                        "HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        let responses = raw.components(separatedBy: "HTTP/1.1 200")
        #expect(responses.count == 3, "\(raw)")
        #expect(raw.contains("\"uri\":\"\\/g\"") || raw.contains("\"uri\":\"/g\""))
    }

    // MARK: - Embedded pipeline

    @Test func embeddedPipelineRejectsSmugglingBeforeTheProxy() throws {
        let channel = EmbeddedChannel()
        var config = SidecarConfiguration()
        config.appPort = 9
        let runtime = ListenerRuntime(direction: .inbound, configuration: ConfigurationBox(config), telemetry: RecordingTelemetry())
        try SidecarServer.configureProxyPipeline(channel.pipeline.syncOperations, runtime: runtime, config: config)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        _ = try? channel.writeInbound(ByteBuffer(string: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"))
        var out = ""
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += String(buffer: b) }
        #expect(out.hasPrefix("HTTP/1.1 400"), "\(out)")
        #expect(runtime.stats.snapshot.requestsTotal == 0)
        _ = try? channel.finish()
    }

    @Test func embeddedRegistryOnlyAnswersNRWithoutAnyUpstream() throws {
        let channel = EmbeddedChannel()
        var config = SidecarConfiguration()
        config.outboundPolicy = .registryOnly
        let telemetry = RecordingTelemetry()
        let runtime = ListenerRuntime(direction: .outbound, configuration: ConfigurationBox(config), telemetry: telemetry)
        try SidecarServer.configureProxyPipeline(channel.pipeline.syncOperations, runtime: runtime, config: config)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET http://nowhere/x HTTP/1.1\r\nHost: nowhere\r\n\r\n"))
        var out = ""
        while let b = try channel.readOutbound(as: ByteBuffer.self) { out += String(buffer: b) }
        #expect(out.hasPrefix("HTTP/1.1 502"), "\(out)")
        #expect(out.contains("x-meshtrace-response-flags: NR"))
        #expect(telemetry.recorded.count == 1)
        #expect(telemetry.recorded.first?.responseFlags == ["NR"])
        #expect(telemetry.recorded.first?.path == "/x")
        #expect(channel.isActive, "keep-alive survives a local reply")
        _ = try? channel.finish()
    }

    @Test func embeddedHeaderTimeout() throws {
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(loop: loop)
        var config = SidecarConfiguration()
        config.appPort = 9
        config.headerTimeoutMillis = 1000
        let runtime = ListenerRuntime(direction: .inbound, configuration: ConfigurationBox(config), telemetry: RecordingTelemetry())
        try SidecarServer.configureProxyPipeline(channel.pipeline.syncOperations, runtime: runtime, config: config)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHo"))
        loop.advanceTime(by: .milliseconds(999))
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)
        loop.advanceTime(by: .milliseconds(2))
        let out = try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } ?? ""
        #expect(out.hasPrefix("HTTP/1.1 408"))
        _ = try? channel.finish()
    }
}
