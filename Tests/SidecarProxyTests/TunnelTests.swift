import Foundation
import MeshtraceTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

/// CONNECT through the outbound listener (what clients do with `HTTPS_PROXY`), over real
/// sockets: a TCP echo server as the target, raw clients, a recording telemetry.
@Suite(.serialized) struct TunnelTests {
    let group = MultiThreadedEventLoopGroup.singleton

    /// Echoes every byte; closes when it has read "bye".
    final class EchoTCP: Sendable {
        let channel: any Channel
        var port: Int { channel.localAddress?.port ?? 0 }

        init(group: any EventLoopGroup) async throws {
            channel = try await ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EchoBytes()) }
                }
                .bind(host: "127.0.0.1", port: 0).get()
        }

        func close() async { try? await channel.close() }
    }

    final class EchoBytes: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        private var tail: [UInt8] = []

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let bytes = unwrapInboundIn(data)
            tail = Array((tail + bytes.readableBytesView.suffix(3)).suffix(3))
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
            if tail == Array("bye".utf8) { context.close(promise: nil) }
        }
    }

    /// A raw client that keeps everything it receives (`RawCollector`) and notes when the proxy closes.
    final class RawClient: Sendable {
        let channel: any Channel
        let received = NIOLockedValueBox(ByteBuffer())
        let closed = NIOLockedValueBox(false)

        init(group: any EventLoopGroup, port: Int) async throws {
            let received = self.received
            let ended = group.next().makePromise(of: Void.self)
            channel = try await ClientBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(RawCollector(received: received, closed: ended))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            ended.futureResult.whenComplete { [closed] _ in closed.withLockedValue { $0 = true } }
        }

        func send(_ bytes: ByteBuffer) async throws { try await channel.writeAndFlush(bytes) }
        func send(_ text: String) async throws { try await send(ByteBuffer(string: text)) }
        var text: String { String(buffer: received.withLockedValue { $0 }) }
        var count: Int { received.withLockedValue { $0.readableBytes } }
        var isClosed: Bool { closed.withLockedValue { $0 } }
        func close() async { try? await channel.close() }
    }

    static let established = "HTTP/1.1 200 Connection Established\r\n\r\n"

    func sidecar(_ configure: (inout SidecarConfiguration) -> Void = { _ in }) async throws -> TestSidecar {
        try await TestSidecar.start(group: group) { c in
            c.serviceName = "client"
            c.inboundPort = -1
            configure(&c)
        }
    }

    @Test func bytesFlowBothWaysAndTheTunnelIsOneSpan() async throws {
        let target = try await EchoTCP(group: group)
        let proxy = try await sidecar()
        defer { Task { await target.close(); await proxy.stop() } }
        let client = try await RawClient(group: group, port: proxy.outboundPort)
        // Bytes sent right behind the head (clients may start TLS without waiting) are kept.
        try await client.send("CONNECT 127.0.0.1:\(target.port) HTTP/1.1\r\nHost: 127.0.0.1:\(target.port)\r\n\r\nhello ")
        #expect(await eventually { client.text == Self.established + "hello " }, "got \(client.text.debugDescription)")
        try await client.send("world")
        #expect(await eventually { client.text == Self.established + "hello world" }, "got \(client.text.debugDescription)")
        #expect(proxy.hops(.outbound).isEmpty, "a tunnel is recorded when it ends")
        #expect(proxy.telemetry.tunnelsOpened == 1, "and counted when it opens")
        await client.close()
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        let hop = try #require(proxy.hops(.outbound).first)
        #expect(hop.method == "CONNECT")
        #expect(hop.path == "127.0.0.1:\(target.port)")
        #expect(hop.statusCode == 200)
        #expect(hop.responseFlags.isEmpty)
        #expect(hop.requestBytes == 11 && hop.responseBytes == 11)
        #expect(hop.upstreamCluster == "PassthroughCluster")
        #expect(hop.upstreamAddress == "127.0.0.1:\(target.port)")
        #expect(hop.isTunnel)
    }

    /// A tunnel to `echo`, a mesh service (an upstream the sidecar knows by name), established.
    func tunnelToEchoService() async throws -> (EchoTCP, TestSidecar, RawClient) {
        let target = try await EchoTCP(group: group)
        let proxy = try await sidecar { $0.upstreams = [UpstreamService(name: "echo", host: "127.0.0.1", port: target.port)] }
        let client = try await RawClient(group: group, port: proxy.outboundPort)
        try await client.send("CONNECT echo:7 HTTP/1.1\r\nHost: echo:7\r\n\r\n")
        #expect(await eventually { client.text == Self.established })
        return (target, proxy, client)
    }

    /// A CONNECT to a mesh service is watched for the HTTP/2 preface (gRPC through
    /// `http_proxy`); bytes that only start like it, in pieces, are still a tunnel, whole.
    @Test func aConnectToAServiceThatIsNotHTTP2StaysATunnel() async throws {
        let (target, proxy, client) = try await tunnelToEchoService()
        defer { Task { await target.close(); await proxy.stop() } }
        #expect(proxy.telemetry.tunnelsOpened == 0, "not counted while the first bytes may still be a preface")
        try await client.send("PRI * HT")
        try await client.send("TP/1.1 not h2")
        #expect(await eventually { client.text == Self.established + "PRI * HTTP/1.1 not h2" }, "got \(client.text.debugDescription)")
        #expect(proxy.telemetry.tunnelsOpened == 1)
        await client.close()
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        let hop = try #require(proxy.hops(.outbound).first)
        #expect(hop.isTunnel && hop.method == "CONNECT" && hop.upstreamCluster == "outbound|7||echo")
        #expect(hop.requestBytes == 21 && hop.responseBytes == 21)
    }

    /// A CONNECT to a mesh service that closes before sending a byte is still a tunnel that
    /// opened and closed: the TCP counts stay paired.
    @Test func aConnectToAServiceClosedBeforeAnyByteIsCountedOnce() async throws {
        let (target, proxy, client) = try await tunnelToEchoService()
        defer { Task { await target.close(); await proxy.stop() } }
        await client.close()
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        #expect(proxy.telemetry.tunnelsOpened == 1)
        #expect(proxy.hops(.outbound).first?.isTunnel == true)
    }

    /// Tunnels are connections to their target like pooled ones: past `maxConnections` a CONNECT
    /// gets 503 UO without a connect, and a closed tunnel gives its slot back.
    @Test func tunnelsCountAgainstTheConnectionLimit() async throws {
        let target = try await EchoTCP(group: group)
        let proxy = try await sidecar { $0.maxConnections = 1 }
        defer { Task { await target.close(); await proxy.stop() } }
        let connect = "CONNECT 127.0.0.1:\(target.port) HTTP/1.1\r\nHost: 127.0.0.1:\(target.port)\r\n\r\n"
        let first = try await RawClient(group: group, port: proxy.outboundPort)
        try await first.send(connect)
        #expect(await eventually { first.text == Self.established })
        let second = try await RawClient(group: group, port: proxy.outboundPort)
        try await second.send(connect)
        #expect(await eventually { second.text.hasPrefix("HTTP/1.1 503") && second.isClosed }, "got \(second.text.debugDescription)")
        #expect(second.text.contains("x-meshtrace-response-flags: UO"))
        await first.close()
        #expect(await eventually { proxy.server.clusters.all.first?.snapshot.connections == 0 })
        let third = try await RawClient(group: group, port: proxy.outboundPort)
        defer { Task { await third.close() } }
        try await third.send(connect + "ping")
        #expect(await eventually { third.text == Self.established + "ping" })
    }

    /// An open tunnel's bytes reach the TCP metrics every reporting interval (Istio's
    /// `tcp_reporting_duration`), not only when it closes; the closing record counts the rest.
    @Test func anOpenTunnelReportsItsBytesPeriodically() async throws {
        let target = try await EchoTCP(group: group)
        let proxy = try await sidecar { $0.tcpReportingIntervalMillis = 50 }
        defer { Task { await target.close(); await proxy.stop() } }
        let client = try await RawClient(group: group, port: proxy.outboundPort)
        try await client.send("CONNECT 127.0.0.1:\(target.port) HTTP/1.1\r\nHost: x\r\n\r\nhello ")
        #expect(await eventually { proxy.telemetry.tunnelProgressReported.received == 6 && proxy.telemetry.tunnelProgressReported.sent == 6 })
        try await client.send("world")
        #expect(await eventually { proxy.telemetry.tunnelProgressReported.received == 11 && proxy.telemetry.tunnelProgressReported.sent == 11 })
        #expect(proxy.hops(.outbound).isEmpty, "still open")
        let reports = proxy.telemetry.tunnelProgressReported.reports
        await client.close()
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        let hop = try #require(proxy.hops(.outbound).first)
        #expect(hop.tunnelBytesReported == (request: 11, response: 11) && hop.requestBytes == 11 && hop.responseBytes == 11)
        #expect(reports >= 2 && proxy.telemetry.tunnelProgressReported.reports == reports, "no report after the close, none for idle intervals")
    }

    @Test func theTargetClosingEndsTheTunnel() async throws {
        let target = try await EchoTCP(group: group)
        let proxy = try await sidecar()
        defer { Task { await target.close(); await proxy.stop() } }
        let client = try await RawClient(group: group, port: proxy.outboundPort)
        try await client.send("CONNECT localhost:\(target.port) HTTP/1.1\r\nHost: localhost\r\n\r\n")
        #expect(await eventually { client.text == Self.established })
        try await client.send("bye")
        #expect(await eventually { client.isClosed }, "the proxy closes the client's side after the target's")
        #expect(client.text == Self.established + "bye")
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        #expect(proxy.hops(.outbound).first?.statusCode == 200)
    }

    /// Megabytes each way with a target that echoes: nothing lost, reordered or held back when
    /// either side is slower than the other.
    @Test func largeTransfersStreamWithBackpressure() async throws {
        let target = try await EchoTCP(group: group)
        let proxy = try await sidecar()
        defer { Task { await target.close(); await proxy.stop() } }
        let client = try await RawClient(group: group, port: proxy.outboundPort)
        try await client.send("CONNECT 127.0.0.1:\(target.port) HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(await eventually { client.text == Self.established })
        var rng = SplitMix64(seed: 9)
        let pattern = (0..<(128 * 1024)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        var expected = ByteBuffer(string: Self.established)
        for round in 0..<64 {
            let cut = round * 4099 % pattern.count  // each chunk a different rotation: loss or reordering shows
            var chunk = ByteBuffer()
            chunk.writeBytes(pattern[cut...])
            chunk.writeBytes(pattern[..<cut])
            expected.writeImmutableBuffer(chunk)
            try await client.send(chunk)
        }
        #expect(await eventually { client.count >= expected.readableBytes }, "received \(client.count) of \(expected.readableBytes)")
        #expect(client.received.withLockedValue { $0 } == expected)
    }

    @Test func anUnreachableTargetIs503UFAndTheConnectionCloses() async throws {
        let proxy = try await sidecar()
        defer { Task { await proxy.stop() } }
        let port = try refusingPort()
        let reply = try await rawExchange(group: group, port: proxy.outboundPort, "CONNECT 127.0.0.1:\(port) HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(reply.hasPrefix("HTTP/1.1 503"), "\(reply)")
        #expect(reply.contains("upstream connect error"), "the refusal says why: \(reply)")
        #expect(reply.contains("x-meshtrace-response-flags: UF"))
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        let hop = try #require(proxy.hops(.outbound).first)
        #expect(hop.statusCode == 503 && hop.responseFlags == ["UF"])
        #expect(!hop.isTunnel && proxy.telemetry.tunnelsOpened == 0, "a refused CONNECT opened nothing")
    }

    @Test func registryOnlyRefusesUnknownTargets() async throws {
        let proxy = try await sidecar { $0.outboundPolicy = .registryOnly }
        defer { Task { await proxy.stop() } }
        let reply = try await rawExchange(group: group, port: proxy.outboundPort, "CONNECT api.example.com:443 HTTP/1.1\r\nHost: api.example.com:443\r\n\r\n")
        #expect(reply.hasPrefix("HTTP/1.1 502"), "\(reply)")
        #expect(reply.contains("not in the registry"))
        #expect(reply.contains("x-meshtrace-response-flags: NR"))
    }

    @Test func connectIsRefusedOnTheInboundListener() async throws {
        let target = try await EchoTCP(group: group)
        let proxy = try await TestSidecar.start(group: group) { c in
            c.serviceName = "app"
            c.appPort = target.port
            c.outboundPort = -1
        }
        defer { Task { await target.close(); await proxy.stop() } }
        let reply = try await rawExchange(group: group, port: proxy.inboundPort, "CONNECT 127.0.0.1:\(target.port) HTTP/1.1\r\nHost: x\r\n\r\nsecret")
        #expect(reply.hasPrefix("HTTP/1.1 405"), "\(reply)")
        #expect(!reply.contains("secret"), "nothing reached the app or came back")
    }

    // MARK: - HTTP/2 prior knowledge (gRPC over h2c): where it has no destination, and the preface probe
    // (the relay itself is in HTTP2RelayTests)

    static let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

    @Test func h2cWhereNoDestinationIsKnownClosesWithASpanSayingWhy() async throws {
        let proxy = try await sidecar()  // outbound, no per-upstream egress
        defer { Task { await proxy.stop() } }
        let reply = try await rawExchange(group: group, port: proxy.outboundPort, Self.preface)
        #expect(reply.isEmpty, "an HTTP/2 client cannot read an HTTP/1 answer: \(reply.debugDescription)")
        #expect(await eventually { proxy.hops(.outbound).count == 1 })
        let hop = try #require(proxy.hops(.outbound).first)
        #expect(hop.statusCode == 400 && hop.responseFlags == ["NR"])
        #expect(hop.failureReason?.contains("h2c") == true)
    }

    /// The probe decides as soon as the bytes differ from the preface, holds only a true prefix
    /// of it, and hands every byte on exactly once, however the input is split.
    @Test func prefaceProbeOverRandomSplits() {
        var rng = SplitMix64(seed: 0x2C)
        let inputs = [Self.preface + "frames", "PUT / HTTP/1.1\r\n\r\n", "POST / HTTP/1.1\r\n\r\n", "PRI * HTTP/1.1\r\n\r\n",
                      "GET / HTTP/1.1\r\n\r\n", "\r\nGET / HTTP/1.1\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r", "P"]
        for _ in 0..<2_000 {
            let text = rng.pick(inputs)
            let bytes = Array(text.utf8)
            var cuts = (0..<rng.below(4)).map { _ in rng.below(bytes.count + 1) }
            cuts = ([0, bytes.count] + cuts).sorted()
            var probe = HTTP2PrefaceProbe()
            var out: [UInt8] = []
            var verdict = "undecided"
            for (a, b) in zip(cuts, cuts.dropFirst()) {
                let piece = ByteBuffer(bytes: bytes[a..<b])
                if probe.decided {
                    out += piece.readableBytesView
                    continue
                }
                switch probe.inspect(piece) {
                case .undecided: break
                case .http1(let held): verdict = "http1"; out += held.readableBytesView
                case .http2(let held): verdict = "http2"; out += held.readableBytesView
                }
            }
            let preface = Array(Self.preface.utf8)  // by bytes: as Characters, "\r\n" is one
            let expected = bytes.starts(with: preface) ? "http2" : preface.starts(with: bytes) ? "undecided" : "http1"
            #expect(verdict == expected, "\(text.debugDescription) split at \(cuts)")
            if verdict != "undecided" { #expect(out == bytes, "\(text.debugDescription) split at \(cuts)") }
        }
    }
}
