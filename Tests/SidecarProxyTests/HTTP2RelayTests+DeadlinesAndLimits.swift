import MeshtraceTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

/// HTTP/2 through the sidecar, continued: deadlines and gRPC timeouts, connection limits and
/// overflow, resets, idle and shutdown, and what random frames and fields cannot break.
extension HTTP2RelayTests {
    func sidecar(
        appPort: Int, timers: any RequestTimers = EventLoopTimers(), _ edit: @escaping @Sendable (inout SidecarConfiguration) -> Void
    ) async throws -> TestSidecar {
        try await TestSidecar.start(group: group, timers: timers) { c in
            c.serviceName = "reports"
            c.appPort = appPort
            c.outboundPort = -1
            edit(&c)
        }
    }

    // The deadline tests move the deadlines' clock themselves (`ManualRequestTimers`): each
    // deadline passes right after the event the test waited for, whatever the machine's load.

    /// The caller's grpc-timeout bounds the call: DEADLINE_EXCEEDED, trailers-only, flag UT,
    /// and the app's stream is cancelled.
    @Test func aCallPastItsGRPCTimeoutIsDeadlineExceeded() async throws {
        let app = try await App(group: group)
        let timers = ManualRequestTimers()
        let proxy = try await sidecar(appPort: app.port, timers: timers) { _ in }
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        async let call = within(.seconds(60), "the timed-out call") {
            try await client.call(Self.grpcCall("/echo.Echo/Hang", extra: [("grpc-timeout", "150m")]), body: "x")
        }
        #expect(await eventually { app.seen.withLockedValue { $0.count } == 1 })
        #expect(await timers.advance(by: .milliseconds(149)) == 0, "not before the caller's deadline")
        #expect(await timers.advance(by: .milliseconds(1)) == 1)
        let response = try await call
        #expect(response.status == "200" && response.grpcStatus == "4", "\(response.headers)")
        #expect(response.headers.first?.first(name: "grpc-message")?.contains("grpc-timeout") == true)
        #expect(await eventually { proxy.hops(.inbound).count == 1 })
        let hop = try #require(proxy.hops(.inbound).first)
        #expect(hop.responseFlags == ["UT"] && hop.grpcStatus == 4)
        #expect(app.seen.withLockedValue { $0.first?.first(name: "grpc-timeout") } == "150m", "passed on to the app")
    }

    /// A call that has not answered within the request timeout gets 504 (DEADLINE_EXCEEDED for
    /// gRPC); one whose response has started may stream past it.
    @Test func theRequestTimeoutRunsUntilTheResponseStarts() async throws {
        let app = try await App(group: group)
        let timers = ManualRequestTimers()
        let proxy = try await sidecar(appPort: app.port, timers: timers) { $0.requestTimeoutMillis = 200 }
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        async let hungCall = within(.seconds(60), "the hung request") {
            try await client.call([":method": "GET", ":scheme": "http", ":authority": "reports", ":path": "/hang"])
        }
        #expect(await eventually { app.seen.withLockedValue { $0.count } == 1 })
        #expect(await timers.advance(by: .milliseconds(199)) == 0)
        #expect(await timers.advance(by: .milliseconds(1)) == 1)
        let hung = try await hungCall
        #expect(hung.status == "504" && String(buffer: hung.body).contains("upstream request timeout after 200 ms"))
        async let grpcHungCall = within(.seconds(60), "the hung call") { try await client.call(Self.grpcCall("/echo.Echo/Hang"), body: "x") }
        #expect(await eventually { app.seen.withLockedValue { $0.count } == 2 })
        #expect(await timers.advance(by: .milliseconds(200)) == 1)
        #expect(try await grpcHungCall.grpcStatus == "4")
        // Answered (headers) before the deadline, finished after it.
        async let streamingCall = within(.seconds(60), "the streaming call") { try await client.call(Self.grpcCall("/echo.Echo/SlowStream"), body: "late") }
        #expect(await eventually { app.seen.withLockedValue { $0.count } == 3 })
        #expect(await eventually { timers.pendingCount == 0 }, "the answer's headers stopped the request timer")
        #expect(await timers.advance(by: .seconds(10)) == 0)
        app.releaseHeld()
        let streaming = try await streamingCall
        #expect(streaming.grpcStatus == "0" && String(buffer: streaming.body) == "late", "answered at once, finished after the timeout")
        #expect(await eventually { proxy.hops(.inbound).count == 3 })
        #expect(proxy.hops(.inbound).map(\.responseFlags) == [["UT"], ["UT"], []])
    }

    /// A grpc-timeout reached after the response started: trailers with DEADLINE_EXCEEDED end
    /// the call the client sees, and the app's stream is reset.
    @Test func aGRPCTimeoutAfterTheHeadersEndsTheCallWithTrailers() async throws {
        let app = try await App(group: group)
        let timers = ManualRequestTimers()
        let proxy = try await sidecar(appPort: app.port, timers: timers) { _ in }
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        async let call = within(.seconds(60), "the timed-out stream") {
            try await client.call(Self.grpcCall("/echo.Echo/SlowStream", extra: [("grpc-timeout", "150m")]), body: "x")
        }
        #expect(await eventually { app.seen.withLockedValue { $0.count } == 1 })
        // The request timer stops at the app's headers; the caller's deadline runs on.
        #expect(await eventually { timers.pendingCount == 1 }, "the answer's headers stopped the request timer")
        #expect(await timers.advance(by: .milliseconds(150)) == 1)
        let response = try await call
        #expect(response.headers.count == 2, "the app's headers, then the proxy's trailers: \(response.headers)")
        #expect(response.status == "200" && response.grpcStatus == "4")
        #expect(await eventually { proxy.hops(.inbound).count == 1 })
        #expect(proxy.hops(.inbound).first?.responseFlags == ["UT"])
    }

    /// The circuit breaker counts HTTP/2 upstream connections: past `maxConnections`, calls get
    /// UNAVAILABLE with flag UO, without a connect.
    @Test func upstreamConnectionsPastTheLimitOverflow() async throws {
        let app = try await App(group: group)
        let proxy = try await sidecar(appPort: app.port) { $0.maxConnections = 1 }
        let first = try await Client.connect(group: group, port: proxy.inboundPort)
        let second = try await Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await first.close(); await second.close(); await proxy.stop(); await app.close() } }
        #expect(try await first.call(Self.grpcCall("/echo.Echo/Say"), body: "1").grpcStatus == "0")  // holds the one connection
        let refused = try await second.call(Self.grpcCall("/echo.Echo/Say"), body: "2")
        #expect(refused.grpcStatus == "14" && refused.headers.first?.first(name: "grpc-message")?.contains("overflow") == true)
        #expect(try await first.call(Self.grpcCall("/echo.Echo/Say"), body: "3").grpcStatus == "0", "the open connection still serves")
        await first.close()
        // Its upstream connection closes with it, and the slot comes back.
        #expect(await eventually { proxy.server.clusters.all.first?.snapshot.connections == 0 })
        #expect(try await second.call(Self.grpcCall("/echo.Echo/Say"), body: "4").grpcStatus == "0")
        #expect(await eventually { proxy.hops(.inbound).count == 4 })
        #expect(proxy.hops(.inbound).map(\.responseFlags) == [[], ["UO"], [], []])
        let counters = proxy.server.clusters.all.first?.snapshot
        #expect(counters?.pending == 0 && counters?.activeRequests == 0 && counters?.activeRetries == 0, "\(String(describing: counters))")
    }

    /// No room for a call to wait for the connection (maxPendingRequests 0): UO at once.
    @Test func aCallWithNoRoomToWaitOverflows() async throws {
        let app = try await App(group: group)
        let proxy = try await sidecar(appPort: app.port) { $0.maxPendingRequests = 0 }
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        #expect(try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "1").grpcStatus == "14")
        #expect(await eventually { proxy.hops(.inbound).count == 1 })
        #expect(proxy.hops(.inbound).first?.responseFlags == ["UO"])
        #expect(proxy.server.clusters.all.first?.snapshot.pending == 0)
    }

    /// gRPC through CONNECT (what `http_proxy` makes grpcio do): the outbound listener reads the
    /// tunnel as HTTP/2 and relays each call, even when the preface and the first call came
    /// before the proxy's 200.
    @Test func grpcInsideAConnectToAServiceIsRelayedCallByCall() async throws {
        let app = try await App(group: group)
        let proxy = try await TestSidecar.start(group: group) { c in
            c.serviceName = "frontend"
            c.inboundPort = -1
            c.upstreams = [UpstreamService(name: "reports", host: "127.0.0.1", port: app.port)]
        }
        let client = try await Self.connectThroughProxy(group: group, port: proxy.outboundPort, authority: "reports:50051")
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        #expect(try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "one").grpcStatus == "0")
        #expect(try await client.call(Self.grpcCall("/echo.Echo/Fail")).grpcStatus == "5")
        #expect(await eventually { proxy.hops(.outbound).count == 2 })
        let hops = proxy.hops(.outbound)
        #expect(hops.map(\.path) == ["/echo.Echo/Say", "/echo.Echo/Fail"])
        #expect(hops.allSatisfy { $0.isGRPC && !$0.isTunnel && $0.upstreamCluster == "outbound|50051||reports" })
        #expect(proxy.telemetry.tunnelsOpened == 0, "no tunnel: the calls are the spans")
        #expect(app.seen.withLockedValue { $0.first?.first(name: "traceparent") } != nil, "the app got this hop's context")
    }

    /// The client cancelling a call resets the app's stream too, and the hop ends DR.
    @Test func aCallResetByTheClientIsResetUpstreamAndRecorded() async throws {
        let (app, proxy, client) = try await inboundRelay()
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        let stream = try await client.openStream(responseTo: nil)
        stream.write(HTTP2Frame.FramePayload.headers(.init(headers: Self.grpcCall("/echo.Echo/Say"))), promise: nil)
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.rstStream(.cancel))
        #expect(await eventually { proxy.hops(.inbound).count == 1 })
        let hop = try #require(proxy.hops(.inbound).first)
        #expect(hop.responseFlags.first == "DR" || hop.responseFlags.first == "DC", "\(hop.responseFlags)")
        #expect(hop.statusCode == nil)
    }

    /// An HTTP/2 connection with no stream open closes after the idle timeout; one with a
    /// stream in progress would not (streams are long-lived, so no request timer applies).
    @Test func anIdleHTTP2ConnectionClosesAfterTheIdleTimeout() async throws {
        let app = try await App(group: group)
        let proxy = try await TestSidecar.start(group: group) { c in
            c.serviceName = "reports"
            c.appPort = app.port
            c.outboundPort = -1
            c.idleTimeoutMillis = 300
        }
        defer { Task { await app.close(); await proxy.stop() } }
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        #expect(try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "x").grpcStatus == "0")
        let closed = NIOLockedValueBox(false)
        client.channel.closeFuture.whenComplete { _ in closed.withLockedValue { $0 = true } }
        #expect(await eventually { closed.withLockedValue { $0 } }, "closed once idle")

        let silent = try await Client.connect(group: group, port: proxy.inboundPort)  // opens no stream at all
        let silentClosed = NIOLockedValueBox(false)
        silent.channel.closeFuture.whenComplete { _ in silentClosed.withLockedValue { $0 = true } }
        #expect(await eventually { silentClosed.withLockedValue { $0 } }, "closed though no stream ever opened")
    }

    /// A body that comes after the HEADERS, in a later read: the stream's reads are held only
    /// until its upstream stream exists, then the body follows.
    @Test func aBodySentAfterTheCallStartedStillArrives() async throws {
        let (app, proxy, client) = try await inboundRelay()
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        let done = client.responsePromise()
        let stream = try await client.openStream(responseTo: done)
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: Self.grpcCall("/echo.Echo/Say"))))
        #expect(await eventually { app.seen.withLockedValue { $0.count } == 1 }, "the call reached the app before its body was sent")
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "later")), endStream: true)))
        let response = try await done.futureResult.get()
        #expect(response.grpcStatus == "0" && String(buffer: response.body) == "later")
    }

    /// Shutdown tells an HTTP/2 client to open no more streams (GOAWAY), lets the call in
    /// flight finish, and then closes the connection.
    @Test func shutdownSendsGoAwayAndLetsTheCallInFlightFinish() async throws {
        let app = try await App(group: group)
        // Drain waits (real time) for the held call until the test releases it.
        let proxy = try await sidecar(appPort: app.port) { $0.drainTimeoutMillis = 60_000 }
        defer { Task { await app.close() } }
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        let closed = NIOLockedValueBox(false)
        client.channel.closeFuture.whenComplete { _ in closed.withLockedValue { $0 = true } }
        async let slow = within(.seconds(60), "the call in flight") { try await client.call(Self.grpcCall("/echo.Echo/Held"), body: "x") }
        #expect(await eventually { proxy.server.stats.snapshot.requestsActive == 1 && app.seen.withLockedValue { $0.count } == 1 })
        let stopping = Task { await proxy.stop() }
        #expect(await eventually { proxy.server.connections.isDraining }, "draining while the call is in flight")
        for loop in group.makeIterator() { try await loop.submit {}.get() }  // the drain events have run
        app.releaseHeld()
        await stopping.value
        let finished = try await slow
        #expect(finished.grpcStatus == "0", "the call in flight finished: \(finished)")
        #expect(client.goAway.withLockedValue { $0 }, "the client was told to stop")
        #expect(await eventually { closed.withLockedValue { $0 } })
    }

    @Test func grpcCallsCarryIstiosGRPCLabels() {
        let metrics = IstioMetrics(workload: "reports", namespace: "default")
        var hop = HopRecord(
            direction: .inbound, context: TraceContext(traceID: TraceID(high: 0, low: 1), spanID: SpanID(2) ?? SpanID.random()),
            sampled: true, startNanos: 0, durationNanos: 1_000_000, method: "POST", path: "/echo.Echo/Fail", authority: "reports",
            httpProtocol: "HTTP/2", statusCode: 200, requestID: "r", sourceService: "frontend", destinationService: "reports")
        hop.isGRPC = true
        hop.grpcStatus = 5
        hop.grpcMessages = (1, 3)
        metrics.record(hop)
        let text = metrics.prometheusText()
        #expect(text.split(separator: "\n").contains { $0.hasPrefix("istio_response_messages_total{") && $0.hasSuffix(" 3") }, "\(text)")
        #expect(text.split(separator: "\n").contains { $0.hasPrefix("istio_request_messages_total{") && $0.hasSuffix(" 1") })
        let line = try? #require(text.split(separator: "\n").first { $0.hasPrefix("istio_requests_total{") })
        #expect(line?.contains(#"request_protocol="grpc""#) == true, "\(line ?? "")")
        #expect(line?.contains(#"grpc_response_status="5""#) == true, "\(line ?? "")")
        #expect(line?.contains(#"response_code="200""#) == true)
    }

    /// Random field lists: pseudo-fields go first and unchanged, the caller's trace context,
    /// request id, markers and hop-by-hop fields never reach the app (this hop's versions do),
    /// `te` only as `trailers`, and every other field arrives as it came, in order.
    @Test func upstreamFieldsOverRandomLists() {
        var rng = SplitMix64(seed: 0x48_32)
        let names = [":method", ":path", ":authority", ":scheme", "content-type", "te", "traceparent", "tracestate", "b3",
                     "x-b3-traceid", "x-b3-sampled", "x-request-id", "x-meshtrace-via", "x-envoy-downstream-service-cluster",
                     "connection", "keep-alive", "upgrade", "user-agent", "grpc-timeout", "x-custom", "baggage", "sw8", "host"]
        let values = ["trailers", "gzip", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x", "", "a b", "application/grpc"]
        let own = [("traceparent", "00-1-2-01"), ("x-request-id", "mine")]
        // sw8 is the hop's to write (its own, or the incoming one back: Sw8HopTests).
        let dropped: Set<String> = ["traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-sampled", "sw8", "x-request-id", "x-meshtrace-via",
                                    "x-envoy-downstream-service-cluster", "connection", "keep-alive", "upgrade", "host"]
        for _ in 0..<2_000 {
            var headers = HPACKHeaders()
            for _ in 0..<rng.below(12) { headers.add(name: rng.pick(names), value: rng.pick(values)) }
            let out = Array(HTTP2Fields.upstream(headers, added: own))
            let pseudo = out.prefix { $0.name.hasPrefix(":") }
            #expect(pseudo.map { "\($0.name)=\($0.value)" } == headers.filter { $0.name.hasPrefix(":") }.map { "\($0.name)=\($0.value)" })
            let rest = Array(out.dropFirst(pseudo.count))
            #expect(!rest.contains { $0.name.hasPrefix(":") }, "pseudo-fields only at the start")
            #expect(Array(rest.suffix(own.count)).map { "\($0.name)=\($0.value)" } == own.map { "\($0.0)=\($0.1)" })
            let forwarded = rest.dropLast(own.count)
            let expected = headers.filter { field in
                !field.name.hasPrefix(":") && !dropped.contains(field.name) && (field.name != "te" || field.value == "trailers")
            }
            #expect(forwarded.map { "\($0.name)=\($0.value)" } == expected.map { "\($0.name)=\($0.value)" }, "\(headers)")
        }
    }

    /// Random frames after the preface (random types, flags, stream ids, lengths and payloads,
    /// HPACK included): each connection ends without a hang, no stream is left counted as in
    /// flight, and the listener still serves a proper call afterwards.
    @Test func randomFramesAfterThePrefaceNeverBreakTheListener() async throws {
        let app = try await App(group: group)
        let proxy = try await inboundSidecar(appPort: app.port)
        defer { Task { await app.close(); await proxy.stop() } }
        var rng = SplitMix64(seed: 0x46_52_41_4D)
        for round in 0..<150 {
            var bytes = Array(TunnelTests.preface.utf8)
            if rng.below(4) != 0 { bytes += [0, 0, 0, 4, 0, 0, 0, 0, 0] }  // an empty SETTINGS first, as clients send
            if rng.below(2) == 0 {
                // A well-formed GET / on stream 1 (HPACK: :method GET, :scheme http, :path /,
                // :authority "a"), so the garbage behind it meets a stream being relayed.
                let endStream: UInt8 = rng.below(2) == 0 ? 0x1 : 0
                bytes += [0, 0, 6, 1, 0x4 | endStream, 0, 0, 0, 1, 0x82, 0x86, 0x84, 0x01, 0x01, 0x61]
            }
            for _ in 0..<(1 + rng.below(4)) {
                let length = rng.below(3) == 0 ? rng.below(1 << 14) : rng.below(40)
                let payload = (0..<min(length, 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                let stream = UInt32(truncatingIfNeeded: rng.below(4) == 0 ? rng.next() : UInt64(rng.below(8)))
                bytes += [UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF),
                          UInt8(rng.below(12)), UInt8(truncatingIfNeeded: rng.next())]
                bytes += [UInt8(stream >> 24 & 0x7F), UInt8(stream >> 16 & 0xFF), UInt8(stream >> 8 & 0xFF), UInt8(stream & 0xFF)]
                bytes += payload
            }
            let ended = try await Self.sendAndHalfClose(group: group, port: proxy.inboundPort, bytes)
            #expect(ended, "round \(round): the connection did not end")
        }
        #expect(await eventually { proxy.server.stats.snapshot.requestsActive == 0 }, "no stream left in flight")
        let relayed = proxy.hops(.inbound).count  // 62 of 150 rounds with this seed
        #expect(relayed > 10, "well-formed streams were read and recorded despite the garbage behind them")
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await client.close() } }
        #expect(try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "ok").grpcStatus == "0")
    }

    /// Sends the bytes, closes the sending side, and says whether the proxy then closed (within 5 s).
    static func sendAndHalfClose(group: any EventLoopGroup, port: Int, _ bytes: [UInt8]) async throws -> Bool {
        let received = NIOLockedValueBox(ByteBuffer())
        let closed = group.next().makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RawCollector(received: received, closed: closed)) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try? await channel.writeAndFlush(ByteBuffer(bytes: bytes))
        try? await channel.close(mode: .output)
        let timer = channel.eventLoop.scheduleTask(in: .seconds(60)) { closed.fail(ChannelError.ioOnClosedChannel) }
        let ended = (try? await closed.futureResult.get()) != nil
        timer.cancel()
        try? await channel.close()
        return ended
    }

    /// Length-prefixed messages cut into frames anywhere are each counted once, empty ones too;
    /// a message counts once its 5-byte prefix has passed.
    @Test func grpcMessagesAreCountedAcrossAnyFraming() {
        var rng = SplitMix64(seed: 0x47_52_50_43)
        for _ in 0..<1_000 {
            let count = rng.below(6)
            var stream: [UInt8] = []
            for _ in 0..<count {
                let length = rng.below(4) == 0 ? 0 : rng.below(300)
                stream += [UInt8(rng.below(2))] + [UInt8(length >> 24 & 0xFF), UInt8(length >> 16 & 0xFF), UInt8(length >> 8 & 0xFF), UInt8(length & 0xFF)]
                stream += (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            var cuts = (0..<rng.below(6)).map { _ in rng.below(stream.count + 1) }
            cuts = ([0, stream.count] + cuts).sorted()
            var counter = GRPCMessageCounter()
            for (a, b) in zip(cuts, cuts.dropFirst()) { counter.consume(ByteBuffer(bytes: stream[a..<b])) }
            #expect(counter.messages == count, "\(count) messages cut at \(cuts)")
        }
    }

    @Test func grpcMessagesArePercentEncoded() {
        #expect(HTTP2Fields.grpcMessage("plain text") == "plain text")
        #expect(HTTP2Fields.grpcMessage("100% café\n") == "100%25 caf%C3%A9%0A")
    }
}
