import Foundation
import Logging
import MeshtraceTesting
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization
@testable import SidecarProxy

/// An upstream app for tests: answers every request with JSON describing what it received.
/// `/status/N` answers N, `/slow?ms=N` waits first, `/stream?chunks=N&size=M` streams a chunked
/// body, `/close` drops the connection without answering, `/closing` answers with
/// `Connection: close` and then closes. Held until the test calls `releaseHeld()`: `/hold`
/// (the whole response), `/hold-once/...` (the first request to that URI only) and `/hold-body`
/// (the body; the head goes at once).
final class EchoApp: Sendable {
    let channel: any Channel
    let requests = NIOLockedValueBox<[(head: HTTPRequestHead, body: Int)]>([])
    let held = NIOLockedValueBox<[@Sendable () -> Void]>([])

    var port: Int { channel.localAddress?.port ?? 0 }

    /// - Parameter status: every answer has this status (a replica that fails), when given.
    init(group: any EventLoopGroup, status: HTTPResponseStatus? = nil) async throws {
        let requests = self.requests
        let held = self.held
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(EchoHandler(requests: requests, held: held, forcedStatus: status))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    /// Sends what `/hold`, `/hold-once` and `/hold-body` held back so far.
    func releaseHeld() {
        for release in held.withLockedValue({ h -> [@Sendable () -> Void] in defer { h.removeAll() }; return h }) { release() }
    }

    /// Requests the app has read to the end (held ones included).
    var requestCount: Int { requests.withLockedValue { $0.count } }

    func close() async {
        releaseHeld()
        try? await channel.close()
    }
}

final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let requests: NIOLockedValueBox<[(head: HTTPRequestHead, body: Int)]>
    let held: NIOLockedValueBox<[@Sendable () -> Void]>
    var head: HTTPRequestHead?
    var bodyBytes = 0
    let forcedStatus: HTTPResponseStatus?

    init(requests: NIOLockedValueBox<[(head: HTTPRequestHead, body: Int)]>, held: NIOLockedValueBox<[@Sendable () -> Void]>,
         forcedStatus: HTTPResponseStatus? = nil) {
        self.requests = requests
        self.held = held
        self.forcedStatus = forcedStatus
    }

    /// Runs `action` on this connection's loop when the test releases held responses (if the
    /// connection is still open then).
    func hold(_ context: ChannelHandlerContext, _ action: @escaping (EchoHandler, ChannelHandlerContext) -> Void) {
        let bound = NIOLoopBound((self, context, action), eventLoop: context.eventLoop)
        let loop = context.eventLoop
        held.withLockedValue {
            $0.append {
                loop.execute {
                    let (handler, context, action) = bound.value
                    if context.channel.isActive { action(handler, context) }
                }
            }
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            bodyBytes = 0
        case .body(let b):
            bodyBytes += b.readableBytes
        case .end:
            guard let head else { return }
            requests.withLockedValue { $0.append((head, bodyBytes)) }
            let (path, query) = split(head.uri)
            if path == "/close" {
                context.close(promise: nil)
                return
            }
            // `/slow-once/...`, `/hold-once/...`: only the first time this exact URI is asked for.
            let firstTime = requests.withLockedValue { $0.filter { $0.head.uri == head.uri }.count } == 1
            if path == "/slow" || (path.hasPrefix("/slow-once/") && firstTime) {
                let ms = Int64(query["ms"] ?? "100") ?? 100
                let body = bodyBytes
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(ms)) { [self] in
                    self.respond(context: context, head: head, body: body)
                }
                return
            }
            if path == "/hold" || (path.hasPrefix("/hold-once/") && firstTime) {
                let body = bodyBytes
                hold(context) { handler, context in handler.respond(context: context, head: head, body: body) }
                return
            }
            if path == "/hold-body" {  // the head at once, the body when released
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "5"]))), promise: nil)
                hold(context) { handler, context in
                    context.write(handler.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "later")))), promise: nil)
                    context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
                }
                return
            }
            if path == "/slow-body" {  // the head at once, the body `ms` later
                let ms = Int64(query["ms"] ?? "100") ?? 100
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["content-length": "5"]))), promise: nil)
                context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(ms)) { [self] in
                    context.write(self.wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: "later")))), promise: nil)
                    context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
                }
                return
            }
            if path == "/stream" {
                let chunks = Int(query["chunks"] ?? "4") ?? 4
                let size = Int(query["size"] ?? "1024") ?? 1024
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: ["transfer-encoding": "chunked"]))), promise: nil)
                for _ in 0..<chunks {
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: UInt8(ascii: "x"), count: size)))), promise: nil)
                }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                return
            }
            respond(context: context, head: head, body: bodyBytes)
        }
    }

    func respond(context: ChannelHandlerContext, head: HTTPRequestHead, body: Int) {
        let (path, _) = split(head.uri)
        var status = HTTPResponseStatus.ok
        if path.hasPrefix("/status/"), let code = Int(path.dropFirst(8)) { status = HTTPResponseStatus(statusCode: code) }
        if path.hasPrefix("/flaky/") {
            // 503 for the first `fail` requests to this exact URI, then 200.
            let fail = Int(split(head.uri).1["fail"] ?? "1") ?? 1
            let seen = requests.withLockedValue { $0.filter { $0.head.uri == head.uri }.count }
            status = seen <= fail ? .serviceUnavailable : .ok
        }
        if let forcedStatus { status = forcedStatus }
        var headersJSON: [[String]] = []
        for (n, v) in head.headers { headersJSON.append([n, v]) }
        let object: [String: Any] = ["method": head.method.rawValue, "uri": head.uri, "headers": headersJSON, "body_bytes": body]
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data()
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "application/json")
        headers.add(name: "content-length", value: String(data.count))
        headers.add(name: "x-app", value: "echo")
        let closing = path == "/closing"  // answers with Connection: close, then closes
        if closing { headers.add(name: "connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: data)))), promise: nil)
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if closing { done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) } }
    }

    func split(_ uri: String) -> (String, [String: String]) {
        let parts = uri.split(separator: "?", maxSplits: 1)
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2 { query[String(kv[0])] = String(kv[1]) }
            }
        }
        return (parts.first.map(String.init) ?? uri, query)
    }
}

/// A response as a test sees it.
struct TestResponse {
    var head: HTTPResponseHead
    var body: ByteBuffer

    var status: Int { Int(head.status.code) }
    var text: String { String(buffer: body) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] ?? [:] }

    /// Headers the echo app received, lower-cased name -> values.
    var echoedHeaders: [String: [String]] {
        var out: [String: [String]] = [:]
        for pair in json["headers"] as? [[String]] ?? [] where pair.count == 2 {
            out[pair[0].lowercased(), default: []].append(pair[1])
        }
        return out
    }
}

/// A keep-alive HTTP/1.1 client over one connection, for driving the proxy in tests.
final class TestClient: Sendable {
    let channel: any Channel
    private let collector: ResponseCollector.Box

    init(group: any EventLoopGroup, port: Int) async throws {
        let box = ResponseCollector.Box()
        collector = box
        channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(box: box))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
    }

    func send(_ method: HTTPMethod = .GET, _ uri: String, headers: [(String, String)] = [], body: ByteBuffer? = nil) async throws -> TestResponse {
        var h = HTTPHeaders(headers)
        if !h.contains(name: "host") { h.add(name: "host", value: "localhost") }
        if let body, !h.contains(name: "content-length"), !h.contains(name: "transfer-encoding") {
            h.add(name: "content-length", value: String(body.readableBytes))
        }
        let promise = channel.eventLoop.makePromise(of: TestResponse.self)
        collector.enqueue(promise)
        let head = HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: h)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(body)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        return try await promise.futureResult.get()
    }

    /// Response heads this client has received, finished or not.
    var headsReceived: Int { collector.heads.withLockedValue { $0 } }

    func close() async { try? await channel.close() }
}

final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    final class Box: Sendable {
        let waiting = NIOLockedValueBox<[EventLoopPromise<TestResponse>]>([])
        /// Response heads received so far (a response's head can arrive long before its end).
        let heads = NIOLockedValueBox(0)
        func enqueue(_ p: EventLoopPromise<TestResponse>) { waiting.withLockedValue { $0.append(p) } }
        func next() -> EventLoopPromise<TestResponse>? { waiting.withLockedValue { $0.isEmpty ? nil : $0.removeFirst() } }
        func failAll(_ error: Error) { for p in waiting.withLockedValue({ w -> [EventLoopPromise<TestResponse>] in defer { w.removeAll() }; return w }) { p.fail(error) } }
    }

    let box: Box
    var head: HTTPResponseHead?
    var body = ByteBuffer()

    init(box: Box) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            box.heads.withLockedValue { $0 += 1 }
        case .body(var b):
            body.writeBuffer(&b)
        case .end:
            if let head { box.next()?.succeed(TestResponse(head: head, body: body)) }
            head = nil
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        box.failAll(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        box.failAll(error)
        context.close(promise: nil)
    }
}

/// Sends raw bytes and returns everything the server sent until it closed (or the timeout).
func rawExchange(group: any EventLoopGroup, port: Int, _ request: String, timeout: TimeAmount = .seconds(30)) async throws -> String {
    try await rawExchangeUntilClosed(group: group, port: port, request, timeout: timeout).received
}

/// Sends raw bytes; returns what the server sent and whether the server closed the connection
/// (false: the test's `timeout` did). The timeout is only a guard against a hang: a test that
/// expects the server to close asserts `closedByServer`, not how long it took.
func rawExchangeUntilClosed(
    group: any EventLoopGroup, port: Int, _ request: String, timeout: TimeAmount = .seconds(60)
) async throws -> (received: String, closedByServer: Bool) {
    let received = NIOLockedValueBox(ByteBuffer())
    let closed = group.next().makePromise(of: Void.self)
    let gaveUp = NIOLockedValueBox(false)
    let channel = try await ClientBootstrap(group: group)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(RawCollector(received: received, closed: closed))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    do {
        try await channel.writeAndFlush(ByteBuffer(string: request))
    } catch {
        // The server may close first (a refused connection over the cap): then nothing was
        // received, and the caller's assertions on the received bytes decide the outcome.
    }
    let timer = channel.eventLoop.scheduleTask(in: timeout) {
        gaveUp.withLockedValue { $0 = true }
        channel.close(promise: nil)
    }
    try? await closed.futureResult.get()
    timer.cancel()
    return (received.withLockedValue { String(buffer: $0) }, !gaveUp.withLockedValue { $0 })
}

final class RawCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let received: NIOLockedValueBox<ByteBuffer>
    let closed: EventLoopPromise<Void>
    init(received: NIOLockedValueBox<ByteBuffer>, closed: EventLoopPromise<Void>) {
        self.received = received
        self.closed = closed
    }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var b = unwrapInboundIn(data)
        _ = received.withLockedValue { $0.writeBuffer(&b) }
    }
    func channelInactive(context: ChannelHandlerContext) {
        closed.succeed(())
        context.fireChannelInactive()
    }
}

/// Polls until `predicate` holds or the deadline passes (generous: it only matters when failing,
/// and parallel tests on two loaded cores can delay a task for seconds).
func eventually(timeout: Duration = .seconds(120), _ predicate: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if predicate() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return predicate()
}

/// A sidecar with ephemeral ports and a recording telemetry.
struct TestSidecar {
    let server: SidecarServer
    let telemetry: RecordingTelemetry
    let addresses: BoundAddresses
    let group: any EventLoopGroup

    static func start(
        group: any EventLoopGroup, timers: any RequestTimers = EventLoopTimers(), _ configure: (inout SidecarConfiguration) -> Void
    ) async throws -> TestSidecar {
        var config = SidecarConfiguration()
        config.inboundPort = 0
        config.outboundPort = 0
        config.metricsPort = 0
        config.adminPort = 0
        config.drainTimeoutMillis = 2000
        configure(&config)
        let telemetry = RecordingTelemetry()
        var logger = Logger(label: "test.sidecar")
        logger.logLevel = .critical
        let server = SidecarServer(configuration: config, telemetry: telemetry, logger: logger, group: group, timers: timers)
        let addresses = try await server.start()
        return TestSidecar(server: server, telemetry: telemetry, addresses: addresses, group: group)
    }

    func port(_ address: String?) -> Int {
        guard let address, let colon = address.lastIndex(of: ":") else { return 0 }
        return Int(address[address.index(after: colon)...]) ?? 0
    }

    var inboundPort: Int { port(addresses.inbound) }
    var outboundPort: Int { port(addresses.outbound) }
    var gatewayPort: Int { port(addresses.gateway) }
    var adminPort: Int { port(addresses.admin) }
    var metricsPort: Int { port(addresses.metrics) }

    /// The hops recorded so far. The proxy records a hop right after flushing the response, in
    /// the same event-loop turn, so a client can hold its response a moment before the hop exists:
    /// a no-op run on every loop first is a barrier that orders this read after those turns.
    func hops(_ direction: ProxyDirection) -> [HopRecord] {
        for loop in group.makeIterator() { try? loop.submit {}.wait() }
        return telemetry.recorded.filter { $0.direction == direction }
    }

    func stop() async { await server.shutdown() }
}
