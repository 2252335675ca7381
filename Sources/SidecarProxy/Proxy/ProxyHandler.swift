import Logging
import NIOCore
import NIOHTTP1
import TraceModel


/// The downstream end of a listener's pipeline: routes each request, propagates trace context,
/// glues the request and response bodies between this channel and a pooled upstream connection
/// with backpressure (reads on one side only while the other side is writable), applies the
/// resilience rules (timeouts, retries, circuit breaker) and hands one `HopRecord` per request
/// to telemetry. Requests on a connection are handled one at a time; pipelined ones queue.
/// It reads and writes the connection's bytes itself (`HTTPRequestParser`,
/// `DownstreamResponseWriter`): every stage between the socket and the proxy cost a type-erased
/// hand-over per message part.
final class ProxyHandler: ChannelDuplexHandler, UpstreamDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    let runtime: ListenerRuntime
    let timeouts: ConnectionTimeoutHandler?
    var context: ChannelHandlerContext?
    /// The request timeout of the exchange in flight, checked by one lazy timer per connection.
    var requestDeadline: LazyDeadline
    /// The per-try timeout of the attempt in flight (`perTryTimeoutMillis`), armed per attempt.
    var tryDeadline: LazyDeadline
    var loopPools: LoopPools?
    var random = FastRandom()
    var exchange: Exchange?
    var queued = CircularBuffer<DownstreamRequestPart>()
    var processingQueue = false
    var heldRead = HeldRead()
    /// Between a downstream read and its readComplete: upstream writes wait for the one flush
    /// at readComplete, so a request's head, body and end leave in as few syscalls as possible.
    var inDownstreamRead = false
    var keepAlive = true
    var draining = false
    var inactive = false
    var downstreamAddress: String?
    var parser: HTTPRequestParser
    var writer = DownstreamResponseWriter()
    /// A request could not be read: the connection's framing is lost, nothing more is read.
    var rejected = false
    /// Whether the connection opened with the HTTP/2 preface (h2c).
    var prefaceProbe = HTTP2PrefaceProbe()
    /// An HTTP/2 connection: its bytes go on to NIO's HTTP/2 handler, after this one, and
    /// its streams to `HTTP2StreamRelay`.
    var http2: HTTP2Connection?

    /// A captured connection's original destination: requests are routed by it (`Router+Capture`).
    let captured: CapturedDestination?

    init(runtime: ListenerRuntime, timeouts: ConnectionTimeoutHandler? = nil, maxHeaderBytes: Int, captured: CapturedDestination? = nil) {
        self.runtime = runtime
        self.timeouts = timeouts
        self.captured = captured
        self.parser = HTTPRequestParser(maxHeadBytes: maxHeaderBytes)
        self.requestDeadline = LazyDeadline(timers: runtime.timers)
        self.tryDeadline = LazyDeadline(timers: runtime.timers)
    }

    // MARK: - Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.loopPools = runtime.pools.pools(for: context.eventLoop)
        self.downstreamAddress = context.channel.remoteAddress.map(UpstreamPool.describe)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        requestDeadline.cancel()
        tryDeadline.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        if downstreamAddress == nil { downstreamAddress = context.channel.remoteAddress.map(UpstreamPool.describe) }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !rejected else { return }
        if http2 != nil {
            context.fireChannelRead(data)
            return
        }
        inDownstreamRead = true
        var input = unwrapInboundIn(data)
        if !prefaceProbe.decided {
            switch prefaceProbe.inspect(input) {
            case .undecided: return
            case .http2(let bytes):
                startHTTP2(bytes)
                return
            case .http1(let bytes): input = bytes
            }
        }
        do {
            try parser.parseForwarding(&input, allocator: context.channel.allocator) { part in received(part) }
        } catch {
            reject(error)
        }
    }

    func received(_ part: DownstreamRequestPart) {
        if rejected || inactive { return }  // closed from inside this parse: the rest goes nowhere
        if !queued.isEmpty {
            queued.append(part)
        } else if let ex = exchange {
            if ex.requestEnded {
                queued.append(part)
            } else {
                requestPart(part, ex)
            }
        } else if case .head(let head) = part {
            startExchange(head)
        }
        // A stray body/end with no exchange belongs to a request already answered and dropped.
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inDownstreamRead = false
        exchange?.connection?.handler.flush()
        exchange?.tunnel?.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        heldRead.read(context, hold: shouldHoldReads)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            exchange?.connection?.handler.resumeReads()
            exchange?.tunnel?.resumeReads()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        inactive = true
        http2?.downstreamClosed()
        if let ex = exchange, ex.isTunnel, ex.responseStarted {
            // The client ended an established tunnel: that is how tunnels end.
            endTunnel(ex)
        } else if let ex = exchange {
            if !ex.responseDone {
                ex.hop.responseFlags.append("DC")
                if ex.hop.failureReason == nil { ex.hop.failureReason = "downstream connection closed before the response completed" }
                if !ex.responseStarted { ex.hop.statusCode = nil }
                finishRecord(ex)
            }
            abandonUpstream(ex)
            cleanup(ex)
            exchange = nil
        }
        queued.removeAll()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        runtime.logger.debug("downstream error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    /// The bytes are not a request that can be served (malformed, smuggling-shaped framing, a
    /// header block over the limit): answer 400 or 431 and close, since once framing is in doubt
    /// nothing after it on the connection can be trusted. A request in flight ends DPE; if its
    /// response has already started, the connection just closes.
    func reject(_ error: HTTPWireError) {
        guard let context, !rejected else { return }
        rejected = true
        queued.removeAll()
        let problem = error.rejection
        runtime.stats.update { $0.rejectedRequests += 1 }
        let responding = exchange.map { $0.responseStarted && !$0.responseDone } ?? false
        if let ex = exchange, !ex.responseDone {
            ex.hop.responseFlags.append("DPE")
            ex.hop.failureReason = "downstream protocol error: \(error)"
            if !ex.responseStarted { ex.hop.statusCode = Int(problem.status.code) }
            finishRecord(ex)
            abandonUpstream(ex)
            cleanup(ex)
            exchange = nil
        }
        guard !responding else {
            context.close(promise: nil)
            return
        }
        let body = problem.reason + "\n"
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(body.utf8.count))
        headers.add(name: "connection", value: "close")
        send(.head(HTTPResponseHead(version: .http1_1, status: problem.status, headers: headers)), method: nil)
        send(.body(.byteBuffer(context.channel.allocator.buffer(string: body))), method: nil)
        let done = context.eventLoop.makePromise(of: Void.self)
        send(.end(nil), method: nil, promise: done)
        context.flush()
        done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }

    /// Serializes a response part onto the connection (not flushed).
    func send(_ part: HTTPServerResponsePart, method: HTTPMethod?, promise: EventLoopPromise<Void>? = nil) {
        guard let context else { return }
        writer.write(part, requestMethod: method, allocator: context.channel.allocator, promise: promise) { bytes, promise in
            context.write(wrapOutboundOut(bytes), promise: promise)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent, let http2 {
            http2.drain()
            return
        }
        if event is DrainEvent {
            draining = true
            keepAlive = false
            if exchange == nil && queued.isEmpty { context.close(promise: nil) }
            return
        }
        if let timeout = event as? DownstreamTimeout, timeout == .bodyStalled {
            if let ex = exchange, !ex.responseStarted, !ex.responseDone {
                keepAlive = false
                localReply(ex, status: .requestTimeout, flags: ["SI"], reason: "request body stalled (idle timeout)")
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    // MARK: - Requests

    var shouldHoldReads: Bool {
        if !queued.isEmpty { return true }
        guard let ex = exchange else { return false }
        if ex.requestEnded || ex.discarding { return false }
        if ex.isTunnel { return !(ex.tunnel?.isWritable ?? false) }
        guard let conn = ex.connection else { return true }
        return !conn.channel.isWritable
    }

    func resumeDownstreamReads() {
        guard !shouldHoldReads else { return }
        heldRead.resume(context)
    }

    func startExchange(_ head: DownstreamRequestHead) {
        guard let context else { return }
        timeouts?.phase(.headReceived)
        let startWall = Clock.wallNanos()
        let startMono = Clock.monoNanos()
        let snapshot = runtime.configuration.snapshot
        let config = snapshot.config
        let direction = runtime.direction
        // A CONNECT connection carries no other request: it becomes a tunnel or it is refused.
        // Nor does a WebSocket handshake: its connection carries the app's frames from then on.
        let upgrade = head.scan.webSocketUpgrade
        keepAlive = keepAlive && head.scan.keepAlive(head.version) && !draining && !head.method.isCONNECT && !upgrade
        let route = captured.map {
            Router.capturedRoute(direction: direction, destination: $0, method: head.method, uri: head.uri, host: head.scan.host, snapshot: snapshot)
        } ?? Router.route(direction: direction, method: head.method, uri: head.uri, host: head.scan.host, snapshot: snapshot)
        // The upstream head: Host and what this hop adds, then the kept fields as they came.
        var added = AddedHeaders(reservingCapacity: 16)
        var host = head.scan.hostListedInConnection ? nil : head.scan.host
        if direction == .outbound, !route.authority.isEmpty, head.uri.hasPrefix("http") { host = route.authority }
        if let host { added.add("host", host) }
        let start = HopStart.begin(
            scan: head.scan, path: route.path, direction: direction, snapshot: snapshot, inference: runtime.inference, random: &random,
            added: &added)
        let trace = start.trace
        let expectsContinue = head.scan.expectsContinue
        if upgrade, let protocols = head.scan.upgrade {
            added.add("connection", "upgrade")
            added.add("upgrade", protocols)
        } else if head.scan.chunked {
            added.add("transfer-encoding", "chunked")
        } else if head.scan.contentLength == nil, head.method.sendsBody {
            added.add("content-length", "0")
        }
        // Appended, not replaced: the scan already left the incoming trace headers out.
        TraceDecision.inject(trace, formats: config.propagation, into: &added)

        let tags = head.scan.customTagValues(config.customTags)

        var hop = HopRecord(
            direction: direction, context: trace.context, sampled: trace.sampled, startNanos: startWall, durationNanos: 0,
            method: head.method.rawValue, path: route.path, authority: route.authority,
            httpProtocol: Self.protocolName(head.version), statusCode: nil, requestID: trace.requestID,
            userAgent: head.scan.userAgent, downstreamAddress: downstreamAddress, sourceService: start.sourceService,
            destinationService: route.destinationService, upstreamCluster: route.clusterName, customTags: tags,
            parentInferred: start.parentInferred)
        hop.propagationExtracted = Self.formatList(trace.extracted)
        if !trace.disagreeing.isEmpty { hop.propagationDisagreed = Self.formatList(trace.disagreeing) }
        if direction == .inbound { hop.propagationInjected = snapshot.propagationInjected }
        hop.upstreamSampled = trace.upstreamSampled
        let upstreamHead = UpstreamRequestHead(
            method: head.method, target: route.path, added: added.fields, forwarded: head.scan.kept, allocator: context.channel.allocator)
        let ex = Exchange(
            hop: hop, snapshot: snapshot, startMono: startMono, requestVersion: head.version, requestFraming: RequestRules.framing(chunked: head.scan.chunked, contentLength: head.scan.contentLength),
            upstreamHead: upstreamHead)
        ex.inferenceToken = start.inferenceToken
        ex.replayable = snapshot.retryPolicy.keepsBodies(direction: direction)  // only these retry on status
        exchange = ex
        runtime.stats.requestStarted()

        if start.looped {
            localReply(ex, status: .loopDetected, flags: [], reason: LoopGuard.reason)
            return
        }
        switch route.outcome {
        case .reject(let status, let flag, let reason):
            localReply(ex, status: status, flags: flag.map { [$0] } ?? [], reason: reason)
        case .forward(let routed):
            let target = balancedTarget(ex, route: route, target: routed)
            if expectsContinue {
                send(.head(HTTPResponseHead(version: head.version, status: .continue)), method: nil)
                context.flush()
            }
            ex.target = target
            if head.method.isCONNECT {
                ex.connectRoute = route
                openTunnel(ex, to: target)
                return
            }
            if upgrade {
                openUpgrade(ex, to: target)
                return
            }
            guard let loopPools else { return }
            let pool = loopPools.pool(for: target, clusters: runtime.clusters)
            ex.pool = pool
            ex.cluster = pool.cluster
            pool.cluster.requestStarted()
            acquireConnection(ex)
        }
    }

    func requestPart(_ part: DownstreamRequestPart, _ ex: Exchange) {
        switch part {
        case .head:
            return  // cannot happen: a new head only follows an .end
        case .body(let buffer):
            ex.hop.requestBytes += buffer.readableBytes
            if ex.discarding { return }
            if ex.isTunnel {
                if ex.tunnel != nil { tunnelClientBytes(buffer, ex) } else { ex.tunnelPending.append(buffer) }
                return
            }
            if ex.replayable {
                ex.replayBytes += buffer.readableBytes
                if ex.replayBytes <= RetryPolicy.replayLimit {
                    ex.replay.append(buffer)
                } else {
                    ex.replayable = false
                    ex.replay = []
                }
            }
            if let conn = ex.connection {
                conn.handler.write(.body(.byteBuffer(buffer)))
            } else {
                ex.buffered.append(.body(.byteBuffer(buffer)))
            }
        case .end(let trailers):
            ex.requestEnded = true
            ex.replayTrailers = trailers
            timeouts?.phase(.requestComplete)
            if ex.discarding || ex.responseDone {
                if ex.responseDone { exchangeFinished(ex) }
                return
            }
            if let conn = ex.connection {
                conn.handler.write(.end(trailers))
                if !inDownstreamRead { conn.handler.flush() }
                ex.requestFullySent = true
                requestSent(ex)
            } else {
                ex.buffered.append(.end(trailers))
            }
        }
    }

    /// "w3c,b3multi"-style lists of the formats found, one constant per combination (built once,
    /// not joined per request); "none" when no format carried a context.
    static func formatList(_ formats: Set<PropagationFormat>) -> String {
        if formats.contains(.sw8) {
            var others = formats
            others.remove(.sw8)
            return others.isEmpty ? "sw8" : formatList(others) + ",sw8"
        }
        switch (formats.contains(.w3c), formats.contains(.b3multi), formats.contains(.b3single)) {
        case (false, false, false): return "none"
        case (true, false, false): return "w3c"
        case (false, true, false): return "b3multi"
        case (false, false, true): return "b3single"
        case (true, true, false): return "w3c,b3multi"
        case (true, false, true): return "w3c,b3single"
        case (false, true, true): return "b3multi,b3single"
        case (true, true, true): return "w3c,b3multi,b3single"
        }
    }

    /// "HTTP/1.1" without building the string per request.
    static func protocolName(_ version: HTTPVersion) -> String {
        switch (version.major, version.minor) {
        case (1, 1): return "HTTP/1.1"
        case (1, 0): return "HTTP/1.0"
        default: return "HTTP/\(version.major).\(version.minor)"
        }
    }
}
