import MeshtraceTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

/// HTTP/2 with prior knowledge (gRPC over h2c) through the inbound listener, over real sockets:
/// NIO's HTTP/2 as the client and as the app, a recording telemetry.
@Suite(.serialized) struct HTTP2RelayTests {
    let group = MultiThreadedEventLoopGroup.singleton

    /// An h2c app: `/echo.Echo/Fail` answers gRPC NOT_FOUND (trailers-only), `/plain` a text
    /// body, anything else echoes the request body as a gRPC response with status 0.
    final class App: Sendable {
        let channel: any Channel
        /// The request HEADERS of every stream, as they arrived.
        let seen = NIOLockedValueBox<[HPACKHeaders]>([])
        /// Answers `/echo.Echo/Held` and `SlowStream` hold back until `releaseHeld()`.
        let held = NIOLockedValueBox<[@Sendable () -> Void]>([])
        var port: Int { channel.localAddress?.port ?? 0 }

        /// Listens on `port`, or on the bound socket `adopting` (a `refusingSocket()`).
        /// - Parameter answer: every stream answered alike (a status, or never), whatever its path.
        init(group: any EventLoopGroup, port: Int = 0, adopting socket: Int32? = nil, answer: AppStream.Answer = .byPath) async throws {
            let seen = self.seen
            let held = self.held
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                            mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                        ) { stream in
                            stream.eventLoop.makeCompletedFuture { try stream.pipeline.syncOperations.addHandler(AppStream(seen: seen, held: held, answer: answer)) }
                        }
                    }
                }
            if let socket {
                channel = try await bootstrap.withBoundSocket(socket).get()
            } else {
                channel = try await bootstrap.bind(host: "127.0.0.1", port: port).get()
            }
        }

        func releaseHeld() {
            for release in held.withLockedValue({ h -> [@Sendable () -> Void] in defer { h.removeAll() }; return h }) { release() }
        }

        func close() async {
            releaseHeld()
            try? await channel.close()
        }
    }

    final class AppStream: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        typealias OutboundOut = HTTP2Frame.FramePayload
        let seen: NIOLockedValueBox<[HPACKHeaders]>
        let held: NIOLockedValueBox<[@Sendable () -> Void]>
        var path: String?
        var body = ByteBuffer()
        let answer: Answer

        enum Answer: Sendable {
            case byPath
            /// HEADERS with this `:status` and nothing else.
            case status(String)
            /// Never answers.
            case silent
        }

        init(seen: NIOLockedValueBox<[HPACKHeaders]>, held: NIOLockedValueBox<[@Sendable () -> Void]>, answer: Answer = .byPath) {
            self.seen = seen
            self.held = held
            self.answer = answer
        }

        /// Runs `action` on the stream's loop when the test releases held answers.
        func hold(_ context: ChannelHandlerContext, _ action: @escaping (AppStream, ChannelHandlerContext) -> Void) {
            let bound = NIOLoopBound((self, context, action), eventLoop: context.eventLoop)
            let loop = context.eventLoop
            held.withLockedValue {
                $0.append {
                    loop.execute {
                        let (stream, context, action) = bound.value
                        if context.channel.isActive { action(stream, context) }
                    }
                }
            }
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let frame):
                if path == nil {
                    path = frame.headers.first(name: ":path") ?? ""
                    seen.withLockedValue { $0.append(frame.headers) }
                }
                if frame.endStream { respond(context) }
            case .data(let frame):
                if case .byteBuffer(var bytes) = frame.data { body.writeBuffer(&bytes) }
                if frame.endStream { respond(context) }
            default:
                break
            }
        }

        func respond(_ context: ChannelHandlerContext) {
            switch answer {
            case .byPath: break
            case .silent: return
            case .status(let status):
                context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: [":status": status, "content-length": "0"], endStream: true))), promise: nil)
                return
            }
            switch path?.split(separator: "?").first.map(String.init) {
            case "/echo.Echo/Held":  // answered as Say when the test releases it
                path = "/echo.Echo/Say"
                hold(context) { stream, context in stream.respond(context) }
            case "/echo.Echo/Hang", "/hang":
                break  // never answers
            case "/echo.Echo/SlowStream":
                // Headers at once, the message and trailers when released: a stream that has answered.
                context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200", "content-type": "application/grpc"]))), promise: nil)
                hold(context) { stream, context in
                    context.write(stream.wrapOutboundOut(.data(.init(data: .byteBuffer(stream.body)))), promise: nil)
                    context.writeAndFlush(stream.wrapOutboundOut(.headers(.init(headers: ["grpc-status": "0"], endStream: true))), promise: nil)
                }
            case "/echo.Echo/Fail":
                let headers: HPACKHeaders = [":status": "200", "content-type": "application/grpc", "grpc-status": "5", "grpc-message": "no such report"]
                context.write(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))), promise: nil)
            case "/plain":
                context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200", "content-type": "text/plain"]))), promise: nil)
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: "hello")), endStream: true))), promise: nil)
            default:
                context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200", "content-type": "application/grpc"]))), promise: nil)
                context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(body)))), promise: nil)
                context.write(wrapOutboundOut(.headers(.init(headers: ["grpc-status": "0"], endStream: true))), promise: nil)
            }
            context.flush()
        }
    }

    /// One finished response: every HEADERS block in order (headers, then trailers) and the body.
    struct Response: Sendable {
        var headers: [HPACKHeaders] = []
        var body = ByteBuffer()
        var reset: HTTP2ErrorCode?
        var status: String? { headers.first?.first(name: ":status") }
        var grpcStatus: String? { headers.last?.first(name: "grpc-status") }
    }

    final class ResponseCollector: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame.FramePayload
        let done: EventLoopPromise<Response>
        var response = Response()

        init(done: EventLoopPromise<Response>) { self.done = done }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .headers(let frame):
                response.headers.append(frame.headers)
                if frame.endStream { done.succeed(response) }
            case .data(let frame):
                if case .byteBuffer(var bytes) = frame.data { response.body.writeBuffer(&bytes) }
                if frame.endStream { done.succeed(response) }
            case .rstStream(let code):
                response.reset = code
                done.succeed(response)
            default:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            done.succeed(response)  // a no-op when already answered
        }
    }

    /// Notes a GOAWAY from the server (connection-level frames pass the HTTP/2 handler).
    final class GoAwayWatcher: ChannelInboundHandler {
        typealias InboundIn = HTTP2Frame
        let seen: NIOLockedValueBox<Bool>
        init(seen: NIOLockedValueBox<Bool>) { self.seen = seen }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            if case .goAway = unwrapInboundIn(data).payload { seen.withLockedValue { $0 = true } }
            context.fireChannelRead(data)
        }
    }

    /// An h2c client: one connection, one stream per call.
    struct Client {
        let channel: any Channel
        let multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>
        let goAway: NIOLockedValueBox<Bool>

        static func connect(group: any EventLoopGroup, port: Int) async throws -> Client {
            let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
            let goAway = NIOLockedValueBox(false)
            let multiplexer = try await channel.eventLoop.submit {
                let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                ) { $0.close() }
                try channel.pipeline.syncOperations.addHandler(GoAwayWatcher(seen: goAway))
                return NIOLoopBound(multiplexer, eventLoop: channel.eventLoop)
            }.get()
            return Client(channel: channel, multiplexer: multiplexer, goAway: goAway)
        }

        /// A promise for a stream's response that fails if it has not come within 60 s (a guard
        /// against a hang: two loaded cores have held a task back for over ten seconds).
        func responsePromise() -> EventLoopPromise<Response> {
            let done = channel.eventLoop.makePromise(of: Response.self)
            channel.eventLoop.scheduleTask(in: .seconds(60)) { done.fail(ChannelError.ioOnClosedChannel) }
            return done
        }

        /// A new stream; its response goes to `done` when given.
        func openStream(responseTo done: EventLoopPromise<Response>?) async throws -> any Channel {
            let multiplexer = self.multiplexer
            return try await channel.eventLoop.flatSubmit {
                multiplexer.value.createStreamChannel { stream in
                    stream.eventLoop.makeCompletedFuture {
                        if let done { try stream.pipeline.syncOperations.addHandler(ResponseCollector(done: done)) }
                    }
                }
            }.get()
        }

        /// Sends `headers` (and `body` in one DATA frame) and waits, at most 10 s, for the end.
        func call(_ headers: HPACKHeaders, body: String? = nil) async throws -> Response {
            let done = responsePromise()
            let stream = try await openStream(responseTo: done)
            let head = HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: body == nil))
            if let body {
                stream.write(head, promise: nil)
                try await stream.writeAndFlush(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: body)), endStream: true)))
            } else {
                try await stream.writeAndFlush(head)
            }
            return try await done.futureResult.get()
        }

        func close() async { try? await channel.close() }
    }

    /// Drops the proxy's `HTTP/1.1 200 Connection Established` head, then passes bytes on: an
    /// HTTP/2 client behind it talks through a CONNECT tunnel.
    final class ConnectResponseStripper: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias InboundOut = ByteBuffer
        private var head = ByteBuffer()
        private var done = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            guard !done else {
                context.fireChannelRead(data)
                return
            }
            head.writeBuffer(&bytes)
            guard let end = String(buffer: head).range(of: "\r\n\r\n") else { return }
            done = true
            let skip = String(buffer: head)[..<end.upperBound].utf8.count
            head.moveReaderIndex(forwardBy: skip)
            if head.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(head)) }
        }
    }

    /// An h2c client that reaches `authority` with CONNECT through the outbound listener, sending
    /// its preface right behind the CONNECT, before the proxy has answered.
    static func connectThroughProxy(group: any EventLoopGroup, port: Int, authority: String) async throws -> Client {
        let channel = try await ClientBootstrap(group: group).connect(host: "127.0.0.1", port: port).get()
        let goAway = NIOLockedValueBox(false)
        let multiplexer = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHandler(ConnectResponseStripper())
            channel.write(ByteBuffer(string: "CONNECT \(authority) HTTP/1.1\r\nHost: \(authority)\r\n\r\n"), promise: nil)
            let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
            ) { $0.close() }
            channel.flush()
            return NIOLoopBound(multiplexer, eventLoop: channel.eventLoop)
        }.get()
        return Client(channel: channel, multiplexer: multiplexer, goAway: goAway)
    }

    static func grpcCall(_ path: String, extra: [(String, String)] = []) -> HPACKHeaders {
        var headers: HPACKHeaders = [
            ":method": "POST", ":scheme": "http", ":authority": "reports:50051", ":path": path,
            "content-type": "application/grpc", "te": "trailers", "user-agent": "grpc-test/1.0",
        ]
        for (name, value) in extra { headers.add(name: name, value: value) }
        return headers
    }

    /// The app, an inbound sidecar in front of it, and a client connected to the sidecar.
    func inboundRelay() async throws -> (App, TestSidecar, Client) {
        let app = try await App(group: group)
        let proxy = try await inboundSidecar(appPort: app.port)
        return (app, proxy, try await Client.connect(group: group, port: proxy.inboundPort))
    }

    func inboundSidecar(appPort: Int) async throws -> TestSidecar {
        try await TestSidecar.start(group: group) { c in
            c.serviceName = "reports"
            c.appPort = appPort
            c.outboundPort = -1
        }
    }

    // MARK: - Tests

    /// Each call on one connection is its own hop: a SERVER span with the caller as parent, this
    /// hop's context handed to the app, and the gRPC status from the trailers.
    @Test func everyGRPCCallIsItsOwnSpanWithTraceHeadersForTheApp() async throws {
        let (app, proxy, client) = try await inboundRelay()
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let first = try await client.call(
            Self.grpcCall("/echo.Echo/Say", extra: [("traceparent", caller), ("x-request-id", "req-1"), ("x-custom", "kept")]), body: "\u{0}\u{0}\u{0}\u{0}\u{3}abc")
        #expect(first.status == "200" && first.grpcStatus == "0")
        #expect(first.body.readableBytes == 8)
        let second = try await client.call(Self.grpcCall("/echo.Echo/Fail"))
        #expect(second.status == "200" && second.grpcStatus == "5")
        #expect(second.headers.first?.first(name: "grpc-message") == "no such report")

        #expect(await eventually { proxy.hops(.inbound).count == 2 })
        let hops = proxy.hops(.inbound)
        let say = try #require(hops.first { $0.path == "/echo.Echo/Say" })
        #expect(say.method == "POST" && say.httpProtocol == "HTTP/2" && say.authority == "reports:50051")
        #expect(say.statusCode == 200 && say.grpcStatus == 0 && say.isGRPC && say.responseFlags.isEmpty)
        #expect(say.requestBytes == 8 && say.responseBytes == 8)
        #expect(say.grpcMessages?.request == 1 && say.grpcMessages?.response == 1)
        #expect(say.context.traceID.hex == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(say.context.parentSpanID?.hex == "00f067aa0ba902b7")
        #expect(say.requestID == "req-1" && say.userAgent == "grpc-test/1.0")
        #expect(say.upstreamCluster == "inbound|\(app.port)||")
        let fail = try #require(hops.first { $0.path == "/echo.Echo/Fail" })
        #expect(fail.grpcStatus == 5 && fail.statusCode == 200)
        #expect(fail.context.traceID != say.context.traceID, "no context came: a new trace")

        let seen = app.seen.withLockedValue { $0 }
        let sayHeaders = try #require(seen.first { $0.first(name: ":path") == "/echo.Echo/Say" })
        let traceparent = try #require(sayHeaders.first(name: "traceparent"))
        #expect(traceparent == "00-4bf92f3577b34da6a3ce929d0e0e4736-\(say.context.spanID.hex)-01", "the app's parent is this hop's span")
        #expect(sayHeaders.first(name: "x-b3-traceid") == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(sayHeaders[canonicalForm: "traceparent"].count == 1, "the caller's traceparent was replaced, not kept")
        #expect(sayHeaders.first(name: "x-request-id") == "req-1")
        #expect(sayHeaders.first(name: "te") == "trailers", "gRPC servers require it")
        #expect(sayHeaders.first(name: "x-custom") == "kept")
        #expect(sayHeaders.first(name: ":authority") == "reports:50051")
    }

    /// Caller → its per-upstream egress listener → the callee's inbound sidecar → the app: one
    /// CLIENT and one SERVER span per call, the client span the parent of the server span, and
    /// the server span the parent the app is told.
    @Test func aCallThroughBothSidecarsIsAClientServerPair() async throws {
        let app = try await App(group: group)
        let callee = try await inboundSidecar(appPort: app.port)
        let caller = try await TestSidecar.start(group: group) { c in
            c.serviceName = "frontend"
            c.appPort = nil
            c.upstreams = [UpstreamService(name: "reports", host: "127.0.0.1", port: callee.inboundPort)]
            c.defaultUpstream = "reports"
        }
        defer { Task { await app.close(); await callee.stop(); await caller.stop() } }
        let client = try await Client.connect(group: group, port: caller.outboundPort)
        defer { Task { await client.close() } }
        let response = try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "\u{0}\u{0}\u{0}\u{0}\u{1}z")
        #expect(response.grpcStatus == "0" && response.body.readableBytes == 6)

        #expect(await eventually { caller.hops(.outbound).count == 1 && callee.hops(.inbound).count == 1 })
        let clientHop = try #require(caller.hops(.outbound).first)
        let serverHop = try #require(callee.hops(.inbound).first)
        #expect(clientHop.destinationService == "reports" && clientHop.upstreamCluster == "outbound|\(callee.inboundPort)||reports")
        #expect(clientHop.grpcStatus == 0 && serverHop.grpcStatus == 0)
        #expect(serverHop.context.traceID == clientHop.context.traceID)
        #expect(serverHop.context.parentSpanID == clientHop.context.spanID, "the CLIENT span is the SERVER span's parent")
        #expect(serverHop.sourceService == "frontend", "the caller's sidecar named itself")
        #expect(serverHop.requestID == clientHop.requestID)
        let seen = try #require(app.seen.withLockedValue { $0 }.first)
        #expect(seen.first(name: "traceparent")?.contains(serverHop.context.spanID.hex) == true)
        #expect(seen.first(name: "x-meshtrace-via") == nil && seen.first(name: "x-envoy-downstream-service-cluster") == nil,
                "the inbound sidecar keeps the mesh's own markers from the app")
    }

    /// Megabytes each way through HTTP/2 flow control (64 KiB windows): the relay's held reads
    /// and the window updates must keep both streams moving, with every byte in order.
    @Test func largeBodiesFlowBothWaysThroughFlowControl() async throws {
        let (app, proxy, client) = try await inboundRelay()
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        var rng = SplitMix64(seed: 0x4D_42)
        let chunk = (0..<(64 * 1024)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let done = client.responsePromise()
        let stream = try await client.openStream(responseTo: done)
        stream.write(HTTP2Frame.FramePayload.headers(.init(headers: Self.grpcCall("/echo.Echo/Say"))), promise: nil)
        let chunks = 64  // 4 MiB
        for i in 0..<chunks {
            let frame = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: chunk)), endStream: i == chunks - 1))
            try await stream.writeAndFlush(frame)  // waits while the proxy's window is closed
        }
        let response = try await done.futureResult.get()
        #expect(response.grpcStatus == "0")
        #expect(response.body.readableBytes == chunks * chunk.count)
        let intact = (0..<chunks).allSatisfy { i in response.body.getBytes(at: i * chunk.count, length: chunk.count) == chunk }
        #expect(intact, "every byte back, in order")
        #expect(await eventually { proxy.hops(.inbound).count == 1 })
        #expect(proxy.hops(.inbound).first?.requestBytes == chunks * chunk.count)
    }

    /// A live sampling change reaches the next call on a connection that was already open
    /// (gRPC clients keep one connection for hours).
    @Test func aLiveSamplingChangeAppliesToTheNextCallOnAnOpenConnection() async throws {
        let (app, proxy, client) = try await inboundRelay()
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        _ = try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "1")
        proxy.server.configuration.update { $0.samplingPercent = 0 }
        _ = try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "2")
        #expect(await eventually { proxy.hops(.inbound).count == 2 })
        #expect(proxy.hops(.inbound).map(\.sampled) == [true, false])
    }

    @Test func aPlainHTTP2RequestIsRelayedToo() async throws {
        let (app, proxy, client) = try await inboundRelay()
        defer { Task { await client.close(); await proxy.stop(); await app.close() } }
        let response = try await client.call([":method": "GET", ":scheme": "http", ":authority": "reports", ":path": "/plain?x=1"])
        #expect(response.status == "200" && String(buffer: response.body) == "hello")
        #expect(await eventually { proxy.hops(.inbound).count == 1 })
        let hop = try #require(proxy.hops(.inbound).first)
        #expect(hop.method == "GET" && hop.path == "/plain?x=1" && !hop.isGRPC && hop.grpcStatus == nil)
        #expect(hop.responseBytes == 5)
    }

    /// gRPC clients read failures from grpc-status: an unreachable app is UNAVAILABLE in a
    /// trailers-only answer (as Envoy's local replies to gRPC are), and the span says UF.
    @Test func anUnreachableAppIsUnavailableForGRPCAnd503Otherwise() async throws {
        let port = try refusingPort()
        let proxy = try await inboundSidecar(appPort: port)
        defer { Task { await proxy.stop() } }
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await client.close() } }
        let grpc = try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "\u{0}\u{0}\u{0}\u{0}\u{0}")
        #expect(grpc.status == "200" && grpc.grpcStatus == "14")
        #expect(grpc.headers.first?.first(name: "grpc-message")?.contains("upstream connect error") == true)
        let plain = try await client.call([":method": "GET", ":scheme": "http", ":authority": "reports", ":path": "/plain"])
        #expect(plain.status == "503")
        #expect(String(buffer: plain.body).contains("upstream connect error"))
        #expect(await eventually { proxy.hops(.inbound).count == 2 })
        let hops = proxy.hops(.inbound)
        let failed = try #require(hops.first { $0.isGRPC })
        #expect(failed.responseFlags == ["UF", "URX"] && failed.grpcStatus == 14 && failed.statusCode == 200)
        #expect(failed.retries == 2, "the connect is retried, as an HTTP/1 request's is")
        let counters = proxy.server.clusters.all.first?.snapshot
        #expect(counters?.pending == 0 && counters?.connections == 0 && counters?.activeRetries == 0, "\(String(describing: counters))")
        #expect(HopSpanBuilder.isError(failed), "UNAVAILABLE under HTTP 200 is still an error span")
        #expect(hops.first { !$0.isGRPC }?.statusCode == 503)
    }

    /// A failed connect is not remembered: once the app is up, the next call on the same client
    /// connection connects again and goes through.
    @Test func theNextCallAfterAFailedConnectTriesAgain() async throws {
        // A port that refuses until the app listens on the very same socket: never free, so no
        // server another test starts can be given it in between.
        let (port, socket) = try refusingSocket()
        let proxy = try await inboundSidecar(appPort: port)
        defer { Task { await proxy.stop() } }
        let client = try await Client.connect(group: group, port: proxy.inboundPort)
        defer { Task { await client.close() } }
        #expect(try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "1").grpcStatus == "14")
        let app = try await App(group: group, adopting: socket)
        defer { Task { await app.close() } }
        #expect(try await client.call(Self.grpcCall("/echo.Echo/Say"), body: "2").grpcStatus == "0")
        #expect(await eventually { proxy.hops(.inbound).count == 2 })
        #expect(proxy.hops(.inbound).map(\.responseFlags) == [["UF", "URX"], []])
    }
}
