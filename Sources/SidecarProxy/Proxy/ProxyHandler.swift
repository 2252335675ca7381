import Logging
import NIOCore
import NIOHTTP1
import TraceModel

/// One request/response through one listener: what was asked, where it went, what came back.
final class Exchange {
    var hop: HopRecord
    /// The configuration this request started under; every later decision for it reads this one.
    let snapshot: ConfigurationBox.Snapshot
    let startMono: UInt64
    let requestVersion: HTTPVersion
    let requestFraming: BodyFraming
    var upstreamHead: UpstreamRequestHead
    var target: UpstreamTarget?
    var cluster: ClusterState?
    var pool: UpstreamPool?
    var connection: UpstreamConnection?
    var waiterID: Int?
    /// Request parts that arrived before the upstream connection was ready.
    var buffered: [UpstreamRequestPart] = []
    var requestEnded = false
    var requestFullySent = false
    var responseStarted = false
    var responseDone = false
    var upstreamKeepAlive = true
    /// The request body is being thrown away (a local reply was sent).
    var discarding = false
    var retriedStale = false
    /// The upstream answered with a status that is retried: its body is dropped, and the request
    /// goes out again when it ends.
    var discardingResponse = false
    /// The request body as sent, kept (as buffer references) so a status retry can send it again;
    /// given up once it passes `ProxyHandler.replayLimit`.
    var replay: [ByteBuffer] = []
    var replayBytes = 0
    var replayable = true
    var replayTrailers: HTTPHeaders?
    var holdingRetrySlot = false
    /// An attempt's per-try timer is running (cleared by its response head or its end).
    var tryStarted = false
    var freshConnection = false
    var timerStarted = false
    var retryTask: Scheduled<Void>?
    var recorded = false
    /// When the response's last part was handed to the channel (monotonic), if it was.
    var endMono: UInt64?
    /// Inbound only, with parent inference on: this request's registration in `ParentInference`.
    var inferenceToken: Int?
    /// A CONNECT request: once its target answers, the connection carries raw bytes both ways.
    var isTunnel = false
    /// The tunnel's upstream end, once connected.
    var tunnel: TunnelHandler?
    /// The next periodic report of the tunnel's bytes to the TCP metrics.
    var tunnelReport: Scheduled<Void>?
    /// Client bytes that arrived before the tunnel's target answered.
    var tunnelPending: [ByteBuffer] = []
    /// A CONNECT to a service of the mesh (its route), whose first bytes are watched for the
    /// HTTP/2 preface: gRPC clients reach `host:port` through `http_proxy` this way.
    var connectRoute: Route?
    var connectPreface: HTTP2PrefaceProbe?
    /// A WebSocket handshake: relayed as a tunnel whose first bytes are the request head, the
    /// answer read only for its status line (101 when the app switched).
    var isUpgrade = false
    /// The start of the app's answer, until its status line is complete.
    var statusLinePrefix: [UInt8] = []

    /// The record, moved out for telemetry once the exchange is reported (a copy would retain
    /// and later release each of its strings); what is left holds only the span context.
    func takeHop() -> HopRecord {
        var taken = HopRecord(
            direction: hop.direction, context: hop.context, sampled: false, startNanos: 0, durationNanos: 0, method: "", path: "",
            authority: "", statusCode: nil, requestID: "", destinationService: "")
        swap(&taken, &hop)
        return taken
    }

    init(hop: HopRecord, snapshot: ConfigurationBox.Snapshot, startMono: UInt64, requestVersion: HTTPVersion, requestFraming: BodyFraming,
         upstreamHead: UpstreamRequestHead) {
        self.hop = hop
        self.snapshot = snapshot
        self.startMono = startMono
        self.requestVersion = requestVersion
        self.requestFraming = requestFraming
        self.upstreamHead = upstreamHead
    }
}

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

    private let runtime: ListenerRuntime
    private let timeouts: ConnectionTimeoutHandler?
    private var context: ChannelHandlerContext?
    /// The request timeout of the exchange in flight, checked by one lazy timer per connection.
    private var requestDeadline: LazyDeadline
    /// The per-try timeout of the attempt in flight (`perTryTimeoutMillis`), armed per attempt.
    private var tryDeadline: LazyDeadline
    private var loopPools: LoopPools?
    private var random = FastRandom()
    private var exchange: Exchange?
    private var queued = CircularBuffer<DownstreamRequestPart>()
    private var processingQueue = false
    private var heldRead = HeldRead()
    /// Between a downstream read and its readComplete: upstream writes wait for the one flush
    /// at readComplete, so a request's head, body and end leave in as few syscalls as possible.
    private var inDownstreamRead = false
    private var keepAlive = true
    private var draining = false
    private var inactive = false
    private var downstreamAddress: String?
    private var parser: HTTPRequestParser
    private var writer = DownstreamResponseWriter()
    /// A request could not be read: the connection's framing is lost, nothing more is read.
    private var rejected = false
    /// Whether the connection opened with the HTTP/2 preface (h2c).
    private var prefaceProbe = HTTP2PrefaceProbe()
    /// An HTTP/2 connection: its bytes go on to NIO's HTTP/2 handler, after this one, and
    /// its streams to `HTTP2StreamRelay`.
    private var http2: HTTP2Connection?

    /// Marks requests that left through an outbound or gateway listener (loop detection).
    static let loopHeader = "x-meshtrace-via"

    /// A captured connection's original destination: requests are routed by it (`Router+Capture`).
    private let captured: CapturedDestination?

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

    private func received(_ part: DownstreamRequestPart) {
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
    private func reject(_ error: HTTPWireError) {
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
    private func send(_ part: HTTPServerResponsePart, method: HTTPMethod?, promise: EventLoopPromise<Void>? = nil) {
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

    private var shouldHoldReads: Bool {
        if !queued.isEmpty { return true }
        guard let ex = exchange else { return false }
        if ex.requestEnded || ex.discarding { return false }
        if ex.isTunnel { return !(ex.tunnel?.isWritable ?? false) }
        guard let conn = ex.connection else { return true }
        return !conn.channel.isWritable
    }

    private func resumeDownstreamReads() {
        guard !shouldHoldReads else { return }
        heldRead.resume(context)
    }

    private func startExchange(_ head: DownstreamRequestHead) {
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
        var trace = TraceDecision.decide(scan: head.scan, path: route.path, snapshot: snapshot, random: &random)
        var inferenceToken: Int?
        var parentInferred = false
        if config.inferParent {
            switch direction {
            case .inbound:
                // Every inbound request counts, health checks included: an extra one in flight can
                // only make inference ambiguous, never wrong.
                inferenceToken = runtime.inference.started(
                    ParentInference.Inbound(context: trace.context, sampled: trace.sampled, requestID: trace.requestID))
            case .outbound where !trace.hadContext && trace.upstreamSampled == nil:
                if case .inferred(let inbound) = runtime.inference.infer() {
                    // Child of the inbound SERVER span, with its sampling decision and tracestate, so
                    // the rest of the path joins the same trace.
                    trace.context = TraceContext(
                        traceID: inbound.context.traceID, spanID: trace.context.spanID, parentSpanID: inbound.context.spanID,
                        sampled: inbound.sampled, debug: inbound.context.debug, traceState: inbound.context.traceState)
                    trace.sampled = inbound.sampled
                    // The app dropped x-request-id too: the request it serves is the one to log under.
                    if !TraceDecision.isAcceptableRequestID(head.scan.requestID ?? "") {
                        trace.requestID = inbound.requestID
                    }
                    parentInferred = true
                }
            case .outbound, .gateway:
                break
            }
        }

        // The upstream head: Host and what this hop adds, then the kept fields as they came.
        var added = AddedHeaders(reservingCapacity: 16)
        var host = head.scan.hostListedInConnection ? nil : head.scan.host
        if direction == .outbound, !route.authority.isEmpty, head.uri.hasPrefix("http") { host = route.authority }
        if let host { added.add("host", host) }
        let sourceService = Self.addMeshMarkers(direction: direction, serviceName: config.serviceName, scan: head.scan, into: &added)
        // Only an outbound or gateway listener adds the loop marker and every inbound strips it,
        // so an outbound request that already carries it came back to a proxy: a loop.
        let looped = direction == .outbound && head.scan.loopMarked
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
            userAgent: head.scan.userAgent, downstreamAddress: downstreamAddress, sourceService: sourceService,
            destinationService: route.destinationService, upstreamCluster: route.clusterName, customTags: tags,
            parentInferred: parentInferred)
        hop.propagationExtracted = Self.formatList(trace.extracted)
        if !trace.disagreeing.isEmpty { hop.propagationDisagreed = Self.formatList(trace.disagreeing) }
        if direction == .inbound { hop.propagationInjected = snapshot.propagationInjected }
        hop.upstreamSampled = trace.upstreamSampled
        let upstreamHead = UpstreamRequestHead(
            method: head.method, target: route.path, added: added.fields, forwarded: head.scan.kept, allocator: context.channel.allocator)
        let ex = Exchange(
            hop: hop, snapshot: snapshot, startMono: startMono, requestVersion: head.version, requestFraming: RequestRules.framing(chunked: head.scan.chunked, contentLength: head.scan.contentLength),
            upstreamHead: upstreamHead)
        ex.inferenceToken = inferenceToken
        ex.replayable = direction != .inbound && !config.retryOnStatus.isEmpty  // only these retry on status
        exchange = ex
        runtime.stats.requestStarted()

        if looped {
            localReply(ex, status: .loopDetected, flags: [], reason: "request looped back into an outbound listener (passthrough to a proxy port?)")
            return
        }
        switch route.outcome {
        case .reject(let status, let flag, let reason):
            localReply(ex, status: status, flags: flag.map { [$0] } ?? [], reason: reason)
        case .forward(let target):
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

    private func requestPart(_ part: DownstreamRequestPart, _ ex: Exchange) {
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
                if ex.replayBytes <= Self.replayLimit {
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
    /// Who sent the request, and the mesh's own fields for the next hop: outbound and gateway
    /// listeners name this service (`x-envoy-downstream-service-cluster`, which the next inbound
    /// sidecar reads as the source) and mark the request as having left a proxy (loop detection).
    /// Inbound listeners add nothing: the caller's sidecar named the source.
    static func addMeshMarkers(
        direction: ProxyDirection, serviceName: String, scan: RequestHeadScan, into added: inout AddedHeaders
    ) -> String? {
        switch direction {
        case .inbound:
            return scan.downstreamCluster
        case .outbound, .gateway:
            added.add("x-envoy-downstream-service-cluster", serviceName)
            added.add(loopHeader, direction.rawValue)
            return serviceName
        }
    }

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

    // MARK: - Upstream connection

    private func poolLimits(_ snapshot: ConfigurationBox.Snapshot) -> UpstreamPool.Limits {
        UpstreamPool.Limits(
            maxConnections: snapshot.config.maxConnections, maxPending: snapshot.config.maxPendingRequests,
            maxIdle: snapshot.config.maxIdlePerUpstream, connectTimeout: .milliseconds(snapshot.config.connectTimeoutMillis))
    }

    private func acquireConnection(_ ex: Exchange) {
        guard let pool = ex.pool else { return }
        switch pool.acquire(limits: poolLimits(ex.snapshot), fresh: ex.freshConnection) {
        case .ready(let conn):
            releaseRetrySlot(ex)
            attach(conn, ex)
        case .waiting(let future, let waiterID):
            ex.waiterID = waiterID
            if waiterID != nil { startRequestTimer(ex) }  // queued: bound the wait
            future.assumeIsolated().whenComplete { [self] result in
                self.connectCompleted(result, ex)
            }
        case .overflow:
            releaseRetrySlot(ex)
            localReply(ex, status: .serviceUnavailable, flags: ["UO"], reason: "upstream overflow: circuit breaker open (max connections and pending requests reached)")
        }
    }

    private func connectCompleted(_ result: Result<UpstreamConnection, Error>, _ ex: Exchange) {
        ex.waiterID = nil
        releaseRetrySlot(ex)
        guard exchange === ex, !ex.responseDone, !inactive else {
            if case .success(let conn) = result { ex.pool?.release(conn, reusable: true, maxIdle: ex.snapshot.config.maxIdlePerUpstream) }
            return
        }
        switch result {
        case .success(let conn):
            attach(conn, ex)
        case .failure(let error):
            connectFailed(error, ex)
        }
    }

    private func connectFailed(_ error: Error, _ ex: Exchange) {
        if let poolError = error as? PoolError, poolError == .cancelled { return }
        let config = ex.snapshot.config
        let timedOut: Bool
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { timedOut = true } else { timedOut = false }
        if startRetry(ex) {
            scheduleRetry(ex)
            return
        }
        var flags = [timedOut ? "UT" : "UF"]
        if config.maxRetries > 0, !ex.isTunnel { flags.append("URX") }  // tunnels are not retried
        let what = timedOut ? "connect timeout" : "connection failure (\(error))"
        let retried = Self.afterRetries(ex.hop.retries)
        localReply(
            ex, status: timedOut ? .gatewayTimeout : .serviceUnavailable, flags: flags,
            reason: "upstream connect error: \(what) to \(ex.target?.address ?? "?")\(retried)")
    }

    /// Takes a retry if the per-request limit and the cluster's retry budget allow one.
    private func startRetry(_ ex: Exchange) -> Bool {
        let config = ex.snapshot.config
        guard ex.hop.retries < config.maxRetries, let cluster = ex.cluster,
              cluster.tryStartRetry(percent: config.retryBudgetPercent, minConcurrency: config.minRetryConcurrency)
        else { return false }
        ex.holdingRetrySlot = true
        ex.hop.retries += 1
        runtime.stats.update { $0.upstreamRetries += 1 }
        return true
    }

    /// The request (head, kept body, end) goes out again, after the back-off.
    private func resend(_ ex: Exchange) {
        ex.buffered = ex.replay.map { .body(.byteBuffer($0)) } + [.end(ex.replayTrailers)]
        ex.requestFullySent = false
        scheduleRetry(ex)
    }

    /// Sends the request again after Envoy's default back-off: 25 ms base, doubling, with jitter.
    private func scheduleRetry(_ ex: Exchange) {
        let base = Int64(25) << Int64(min(ex.hop.retries - 1, 6))
        let delay = base / 2 + Int64(random.next() % UInt64(max(base, 1)))
        ex.retryTask = context?.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(delay)) { [self] in
            ex.retryTask = nil
            guard self.exchange === ex, !ex.responseDone else {
                self.releaseRetrySlot(ex)
                return
            }
            self.acquireConnection(ex)
        }
    }

    /// " after 1 retry", " after 2 retries", or nothing: the tail of a local reply's reason.
    static func afterRetries(_ n: Int) -> String {
        n == 0 ? "" : n == 1 ? " after 1 retry" : " after \(n) retries"
    }

    /// Request bodies up to this size are kept for a status retry (Envoy buffers a retried
    /// request up to its connection buffer limit; a sidecar aiming at 30 MB keeps less).
    static let replayLimit = 64 * 1024

    /// Whether this upstream response is dropped and the request retried (Istio's
    /// `retriable-status-codes`). Only outbound and gateway requests, whose whole body was sent and
    /// kept (`replayLimit`). When no retry is left (limit or budget), the response goes through
    /// flagged `URX`, as Envoy flags it.
    private func retriesStatus(_ status: Int, _ ex: Exchange) -> Bool {
        let config = ex.snapshot.config
        guard runtime.direction != .inbound, config.retryOnStatus.contains(status), ex.requestEnded, ex.replayable else {
            return false
        }
        if startRetry(ex) { return true }
        if config.maxRetries > 0 { ex.hop.responseFlags.append("URX") }  // as for connect failures
        return false
    }

    private func releaseRetrySlot(_ ex: Exchange) {
        if ex.holdingRetrySlot {
            ex.holdingRetrySlot = false
            ex.cluster?.retryFinished()
        }
    }

    private func attach(_ conn: UpstreamConnection, _ ex: Exchange) {
        conn.uses += 1
        ex.discardingResponse = false
        conn.handler.delegate = self
        ex.connection = conn
        ex.hop.upstreamAddress = conn.remoteAddress
        conn.handler.write(.head(ex.upstreamHead))
        for part in ex.buffered {
            conn.handler.write(part)
            if case .end = part { ex.requestFullySent = true }
        }
        ex.buffered.removeAll()
        if !inDownstreamRead { conn.handler.flush() }
        if ex.requestEnded { requestSent(ex) }
        resumeDownstreamReads()
    }

    /// The whole request has gone to the upstream on this attempt: the request's timer starts
    /// (once), and this attempt's.
    private func requestSent(_ ex: Exchange) {
        startRequestTimer(ex)
        let millis = ex.snapshot.config.perTryTimeoutMillis
        guard millis > 0, let context else { return }
        ex.tryStarted = true
        tryDeadline.set(runtime.timers.now(on: context.eventLoop) + .milliseconds(millis), loop: context.eventLoop) { [self] in self.tryTimerFired() }
    }

    private func tryTimerFired() {
        guard let context else { return }
        guard tryDeadline.timerFired(loop: context.eventLoop, fire: { [self] in self.tryTimerFired() }) else { return }
        if let ex = exchange { tryTimedOut(ex) }
    }

    /// An attempt got no response head in time: its connection is dropped and the request goes
    /// out again if a retry is allowed and its body can be sent again; otherwise 504 UT.
    private func tryTimedOut(_ ex: Exchange) {
        guard exchange === ex, ex.tryStarted, !ex.responseStarted, !ex.responseDone, ex.connection != nil else { return }
        ex.tryStarted = false
        let config = ex.snapshot.config
        abandonUpstream(ex)
        let resendable = ex.replayable || ex.hop.requestBytes == 0
        if runtime.direction != .inbound, resendable, startRetry(ex) {
            resend(ex)
            return
        }
        var flags = ["UT"]
        if config.maxRetries > 0, runtime.direction != .inbound { flags.append("URX") }
        let retried = Self.afterRetries(ex.hop.retries)
        localReply(ex, status: .gatewayTimeout, flags: flags, reason: "upstream per-try timeout after \(config.perTryTimeoutMillis) ms\(retried)")
    }

    private func startRequestTimer(_ ex: Exchange) {
        let millis = ex.snapshot.config.requestTimeoutMillis
        guard millis > 0, !ex.timerStarted, let context else { return }
        ex.timerStarted = true
        requestDeadline.set(runtime.timers.now(on: context.eventLoop) + .milliseconds(millis), loop: context.eventLoop) { [self] in self.requestTimerFired() }
    }

    private func requestTimerFired() {
        guard let context else { return }
        guard requestDeadline.timerFired(loop: context.eventLoop, fire: { [self] in self.requestTimerFired() }) else { return }
        if let ex = exchange { requestTimedOut(ex) }
    }

    private func requestTimedOut(_ ex: Exchange) {
        guard exchange === ex, !ex.responseDone else { return }
        let millis = ex.snapshot.config.requestTimeoutMillis
        if !ex.responseStarted {
            abandonUpstream(ex)
            localReply(ex, status: .gatewayTimeout, flags: ["UT"], reason: "upstream request timeout after \(millis) ms")
        } else {
            ex.hop.responseFlags.append("UT")
            ex.hop.failureReason = "upstream request timeout after \(millis) ms (response incomplete)"
            abandonUpstream(ex)
            finishRecord(ex)
            ex.responseDone = true
            context?.close(promise: nil)
        }
    }

    /// Drops the upstream side of an exchange that will not complete normally.
    private func abandonUpstream(_ ex: Exchange) {
        if let id = ex.waiterID {
            ex.waiterID = nil
            ex.pool?.cancelWaiter(id)
        }
        ex.retryTask?.cancel()
        ex.retryTask = nil
        releaseRetrySlot(ex)
        if let conn = ex.connection {
            ex.connection = nil
            conn.handler.delegate = nil
            conn.channel.close(promise: nil)
        }
    }

    // MARK: - UpstreamDelegate

    var downstreamWritable: Bool { context?.channel.isWritable ?? false }

    func upstreamReceived(_ part: UpstreamResponsePart, from connection: UpstreamConnection) {
        guard let ex = exchange, ex.connection === connection, let context else { return }
        switch part {
        case .head(let response):
            ex.upstreamKeepAlive = connection.handler.responseKeepAlive
            if retriesStatus(Int(response.status.code), ex) {
                ex.discardingResponse = true
                return
            }
            ex.responseStarted = true
            if ex.tryStarted {
                ex.tryStarted = false
                tryDeadline.clear()
            }
            ex.hop.statusCode = Int(response.status.code)
            // The upstream's fields go out as the bytes they came in (hop-by-hop ones already
            // left out); only what this hop adds is built here.
            var extra = HTTPHeaders()
            if ex.requestVersion.minor == 0, response.contentLength == nil {
                keepAlive = false  // an HTTP/1.0 client learns the body's end from the close
            }
            if !keepAlive {
                extra.add(name: "connection", value: "close")
            } else if ex.requestVersion.minor == 0 {
                extra.add(name: "connection", value: "keep-alive")
            }
            writer.writeForwarded(
                response, version: ex.requestVersion, extra: extra, requestMethod: ex.upstreamHead.method,
                allocator: context.channel.allocator, promise: nil
            ) { bytes, promise in
                context.write(wrapOutboundOut(bytes), promise: promise)
            }
        case .body(let buffer):
            if ex.discardingResponse { return }
            ex.hop.responseBytes += buffer.readableBytes
            send(.body(.byteBuffer(buffer)), method: nil)
        case .end(let trailers):
            ex.connection = nil
            let reusable = ex.upstreamKeepAlive && ex.requestFullySent
            ex.pool?.release(connection, reusable: reusable, maxIdle: ex.snapshot.config.maxIdlePerUpstream)
            if ex.discardingResponse {
                // The dropped response is over: the request goes out again.
                ex.discardingResponse = false
                resend(ex)
                return
            }
            responseComplete(ex, trailers: trailers)
        }
    }

    func upstreamReadComplete() {
        context?.flush()
    }

    func upstreamWritabilityChanged(_ connection: UpstreamConnection) {
        guard exchange?.connection === connection else { return }
        resumeDownstreamReads()
    }

    func upstreamClosed(_ connection: UpstreamConnection, error: Error?) {
        guard let ex = exchange, ex.connection === connection else { return }
        ex.connection = nil
        ex.discardingResponse = false
        if !ex.responseStarted {
            // A reused keep-alive connection the upstream had already closed: try once more on a
            // fresh one if nothing of the body was streamed yet (Envoy's reset-before-request).
            if connection.uses > 1, !ex.retriedStale, ex.hop.requestBytes == 0 {
                ex.retriedStale = true
                ex.freshConnection = true
                ex.buffered = ex.requestEnded ? [.end(nil)] : []
                ex.requestFullySent = false
                acquireConnection(ex)
                return
            }
            let protocolError = error is HTTPWireError
            localReply(
                ex, status: .serviceUnavailable, flags: [protocolError ? "UPE" : "UC"],
                reason: protocolError
                    ? "upstream protocol error: \(error.map { "\($0)" } ?? "")"
                    : "upstream connection termination before response headers")
        } else {
            ex.hop.responseFlags.append(error is HTTPWireError ? "UPE" : "UC")
            ex.hop.failureReason = "upstream connection closed mid-response"
            finishRecord(ex)
            ex.responseDone = true
            context?.close(promise: nil)
        }
    }

    // MARK: - Responses

    /// A response the proxy makes itself (routing failure, upstream failure, timeout).
    private func localReply(_ ex: Exchange, status: HTTPResponseStatus, flags: [String], reason: String) {
        guard let context, !ex.responseDone else { return }
        abandonUpstream(ex)
        ex.hop.statusCode = Int(status.code)
        ex.hop.responseFlags.append(contentsOf: flags)
        ex.hop.failureReason = reason
        if !ex.requestEnded {
            ex.discarding = true
            ex.buffered.removeAll()
            if ex.requestFraming != .none { keepAlive = false }
        }
        let body = reason + "\n"
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: "text/plain")
        headers.add(name: "content-length", value: String(body.utf8.count))
        if !flags.isEmpty { headers.add(name: "x-meshtrace-response-flags", value: flags.joined(separator: ",")) }
        headers.add(name: "x-request-id", value: ex.hop.requestID)
        if !keepAlive { headers.add(name: "connection", value: "close") }
        ex.responseStarted = true
        ex.hop.responseBytes += body.utf8.count
        runtime.stats.update { $0.localReplies += 1 }
        // A refused CONNECT answers like any request (a body, framed): only a 2xx opens a tunnel.
        let method = ex.upstreamHead.method.isCONNECT ? nil : ex.upstreamHead.method
        send(.head(HTTPResponseHead(version: ex.requestVersion, status: status, headers: headers)), method: method)
        send(.body(.byteBuffer(context.channel.allocator.buffer(string: body))), method: nil)
        responseComplete(ex, trailers: nil)
    }

    private func responseComplete(_ ex: Exchange, trailers: HTTPHeaders?) {
        guard let context else { return }
        ex.responseDone = true
        // Telemetry (metrics, the span) is recorded after the flush, so the client has its
        // response before the proxy spends time on it. The span ends before the write, though:
        // a caller's CLIENT span can end as soon as the bytes arrive, and a SERVER span ending
        // after it (the thread preempted between write and record) reads as clock skew.
        ex.endMono = Clock.monoNanos()
        let mustClose = !keepAlive || (ex.discarding && ex.requestFraming != .none && !ex.requestEnded)
        if mustClose {
            let done = context.eventLoop.makePromise(of: Void.self)
            send(.end(trailers), method: nil, promise: done)
            context.flush()
            done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
            finishRecord(ex)
            cleanup(ex)
            exchange = nil
            return
        }
        send(.end(trailers), method: nil)
        context.flush()
        finishRecord(ex)
        if !ex.requestEnded {
            // Upstream answered before the request body finished: forward nothing more of it.
            ex.discarding = true
            resumeDownstreamReads()
            return
        }
        exchangeFinished(ex)
    }

    /// Both directions are done: the connection can take the next request.
    private func exchangeFinished(_ ex: Exchange) {
        cleanup(ex)
        exchange = nil
        guard let context else { return }
        if !keepAlive {
            context.close(promise: nil)
            return
        }
        processQueue()
        exchange?.connection?.handler.flush()  // parts replayed from the queue, outside any read
        if exchange == nil {
            timeouts?.phase(.idle)
        }
        resumeDownstreamReads()
    }

    private func processQueue() {
        guard !processingQueue else { return }
        processingQueue = true
        defer { processingQueue = false }
        while let part = queued.first {
            if let ex = exchange {
                guard !ex.requestEnded else { break }
                queued.removeFirst()
                requestPart(part, ex)
            } else {
                queued.removeFirst()
                if case .head(let head) = part { startExchange(head) }
            }
        }
    }

    private func finishRecord(_ ex: Exchange) {
        guard !ex.recorded else { return }
        ex.recorded = true
        releaseInference(ex)
        ex.hop.durationNanos = (ex.endMono ?? Clock.monoNanos()) &- ex.startMono
        let flags = ex.hop.responseFlags
        runtime.telemetry.record(ex.takeHop())
        runtime.stats.requestFinished(flags: flags)
    }

    /// The inbound request is answered: it can no longer be the cause of an outbound call.
    private func releaseInference(_ ex: Exchange) {
        if let token = ex.inferenceToken {
            ex.inferenceToken = nil
            runtime.inference.finished(token)
        }
    }

    private func cleanup(_ ex: Exchange) {
        releaseInference(ex)
        if let tunnel = ex.tunnel {
            ex.tunnel = nil
            tunnel.close()
        }
        ex.tunnelReport?.cancel()
        ex.tunnelReport = nil
        if ex.timerStarted { requestDeadline.clear() }
        if ex.tryStarted {
            ex.tryStarted = false
            tryDeadline.clear()
        }
        ex.retryTask?.cancel()
        ex.retryTask = nil
        releaseRetrySlot(ex)
        if let cluster = ex.cluster {
            ex.cluster = nil
            cluster.requestFinished()
        }
    }
}

// MARK: - CONNECT tunnels

extension ProxyHandler: TunnelDelegate {
    /// Connects to the target; on success answers 200 and from then on passes bytes both ways.
    /// A refused or timed-out connect answers 503 UF or 504 UT, as for any upstream.
    fileprivate func openTunnel(_ ex: Exchange, to target: UpstreamTarget) {
        ex.isTunnel = true
        connectDedicated(ex, to: target) { [self] result in
            self.tunnelConnected(result, ex)
        }
    }

    /// A connection of the exchange's own to `target` (a tunnel, a WebSocket), counted against
    /// the upstream's circuit breaker as pooled ones are: long-lived connections are what
    /// `--max-connections` is for. Past it the request gets 503 `UO`, and no connect.
    private func connectDedicated(
        _ ex: Exchange, to target: UpstreamTarget, done: @escaping (Result<(any Channel, TunnelHandler), any Error>) -> Void
    ) {
        guard let context else { return }
        let cluster = runtime.clusters.cluster(for: target)
        let max = ex.snapshot.config.maxConnections
        guard cluster.tryReserveConnection(max: max) else {
            localReply(ex, status: .serviceUnavailable, flags: ["UO"], reason: "upstream overflow: \(max) connections to \(target.address) already open")
            return
        }
        let connecting = TunnelHandler.connect(on: context.eventLoop, to: target, timeout: poolLimits(ex.snapshot).connectTimeout)
        connecting.assumeIsolated().whenComplete { result in
            switch result {
            case .success(let (channel, _)): channel.closeFuture.whenComplete { _ in cluster.releaseConnection() }
            case .failure: cluster.releaseConnection()
            }
            done(result)
        }
    }

    private func tunnelConnected(_ result: Result<(any Channel, TunnelHandler), any Error>, _ ex: Exchange) {
        guard exchange === ex, !ex.responseDone, !inactive, let context else {
            if case .success(let (channel, _)) = result { channel.close(promise: nil) }
            return
        }
        switch result {
        case .failure(let error):
            connectFailed(error, ex)
        case .success(let (channel, tunnel)):
            tunnel.delegate = self
            ex.tunnel = tunnel
            ex.hop.upstreamAddress = channel.remoteAddress.map(UpstreamPool.describe) ?? ex.target?.address
            ex.hop.statusCode = 200
            ex.hop.isTunnel = true
            ex.responseStarted = true
            if ex.connectRoute?.clusterName?.hasPrefix("outbound|") == true {
                // A service of the mesh: the client's first bytes say whether this is gRPC.
                ex.connectPreface = HTTP2PrefaceProbe()
            } else {
                tunnelOpened(ex)
            }
            send(.head(HTTPResponseHead(version: ex.requestVersion, status: .custom(code: 200, reasonPhrase: "Connection Established"))),
                 method: .CONNECT)
            context.flush()
            let pending = ex.tunnelPending
            ex.tunnelPending = []
            for bytes in pending {
                if http2 != nil {
                    context.fireChannelRead(NIOAny(bytes))  // an earlier piece began HTTP/2: the rest is its
                } else {
                    tunnelClientBytes(bytes, ex)
                }
            }
            ex.tunnel?.flush()
            timeouts?.phase(.headReceived)
            resumeDownstreamReads()
        }
    }

    /// A WebSocket handshake goes to the target on a connection of its own (one that switches
    /// protocols is never pooled again): the request head first, then the client's bytes as they
    /// come, and the target's bytes back as they come. Only the answer's status line is read.
    fileprivate func openUpgrade(_ ex: Exchange, to target: UpstreamTarget) {
        ex.isTunnel = true
        ex.isUpgrade = true
        ex.tunnelPending = [ex.upstreamHead.bytes]
        connectDedicated(ex, to: target) { [self] result in
            guard self.exchange === ex, !ex.responseDone, !self.inactive else {
                if case .success(let (channel, _)) = result { channel.close(promise: nil) }
                return
            }
            switch result {
            case .failure(let error):
                ex.tunnelPending = []
                self.connectFailed(error, ex)
            case .success(let (channel, tunnel)):
                tunnel.delegate = self
                ex.tunnel = tunnel
                ex.hop.upstreamAddress = channel.remoteAddress.map(UpstreamPool.describe) ?? target.address
                for bytes in ex.tunnelPending { tunnel.write(bytes) }
                ex.tunnelPending = []
                tunnel.flush()
                self.resumeDownstreamReads()
            }
        }
    }

    /// The status of the app's answer to a WebSocket handshake, from its first bytes (which may
    /// come in pieces): `HTTP/1.1 101 Switching Protocols` when it switched.
    private func readUpgradeStatus(_ bytes: ByteBuffer, _ ex: Exchange) {
        guard ex.hop.statusCode == nil, ex.statusLinePrefix.count < 12 else { return }
        ex.statusLinePrefix += bytes.readableBytesView.prefix(12 - ex.statusLinePrefix.count)
        guard ex.statusLinePrefix.count == 12 else { return }
        let line = ex.statusLinePrefix
        let digits = line[9..<12]
        if line.starts(with: Array("HTTP/1.".utf8)), digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            ex.hop.statusCode = digits.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        }
    }

    /// The tunnel is a tunnel (not gRPC to relay call by call): it counts as opened, and its
    /// bytes are reported while it lasts.
    private func tunnelOpened(_ ex: Exchange) {
        runtime.telemetry.tunnelOpened(ex.hop)
        scheduleTunnelReport(ex)
    }

    /// Client bytes for an open tunnel. While a CONNECT to a mesh service is undecided they go
    /// through the preface probe first: the HTTP/2 preface turns the connection into an HTTP/2
    /// relay to that service (a span per call, as on an egress listener), anything else is a
    /// tunnel as usual.
    private func tunnelClientBytes(_ bytes: ByteBuffer, _ ex: Exchange) {
        guard var probe = ex.connectPreface else {
            ex.tunnel?.write(bytes)
            return
        }
        let verdict = probe.inspect(bytes)
        ex.connectPreface = probe
        switch verdict {
        case .undecided:
            return
        case .http1(let held):
            ex.connectPreface = nil
            tunnelOpened(ex)
            ex.tunnel?.write(held)
        case .http2(let held):
            ex.connectPreface = nil
            relayTunnelAsHTTP2(ex, held)
        }
    }

    /// gRPC (h2c) inside a CONNECT to a mesh service: the raw connection opened for the tunnel
    /// closes unused, the CONNECT itself is no span (the calls are, each its own), and the
    /// client's connection is read as HTTP/2 from here, as a per-upstream egress listener's is.
    private func relayTunnelAsHTTP2(_ ex: Exchange, _ bytes: ByteBuffer) {
        guard let route = ex.connectRoute, case .forward(let target) = route.outcome else { return }
        ex.responseDone = true
        ex.requestEnded = true
        ex.recorded = true
        runtime.stats.requestFinished(flags: [])  // balances the CONNECT's requestStarted
        cleanup(ex)
        exchange = nil
        relayHTTP2(bytes, route: route, target: target, snapshot: ex.snapshot)
    }

    func tunnelReceived(_ bytes: ByteBuffer) {
        guard let ex = exchange, ex.isTunnel, let context else { return }
        if var probe = ex.connectPreface {
            // The target spoke first: not gRPC. What the client sent so far goes to it.
            ex.connectPreface = nil
            tunnelOpened(ex)
            if let held = probe.release() { ex.tunnel?.write(held) }
            ex.tunnel?.flush()
        }
        if ex.isUpgrade {
            ex.responseStarted = true
            readUpgradeStatus(bytes, ex)
        }
        ex.hop.responseBytes += bytes.readableBytes
        timeouts?.phase(.headReceived)  // traffic either way keeps an idle tunnel open
        context.write(wrapOutboundOut(.byteBuffer(bytes)), promise: nil)
    }

    func tunnelReadComplete() {
        context?.flush()
    }

    func tunnelWritabilityChanged() {
        guard exchange?.tunnel?.isWritable == true else { return }
        resumeDownstreamReads()
    }

    /// The target closed (or failed): what it sent is flushed, then the client's side closes.
    func tunnelClosed(error: (any Error)?) {
        guard let ex = exchange, ex.isTunnel, let context else { return }
        ex.tunnel = nil
        if ex.isUpgrade, !ex.responseStarted {
            // The app closed without answering the handshake: a proxy's answer can still go out.
            localReply(ex, status: .serviceUnavailable, flags: ["UC"],
                       reason: "upstream connection closed before answering the WebSocket handshake\(error.map { ": \($0)" } ?? "")")
            return
        }
        if let error, ex.hop.failureReason == nil {
            ex.hop.failureReason = "tunnel target connection failed: \(error)"
            ex.hop.responseFlags.append("UC")
        }
        endTunnel(ex)
        context.flush()
        context.close(promise: nil)
    }

    /// An HTTP/2 prior-knowledge connection (gRPC over h2c): read by NIO's HTTP/2 handler,
    /// added behind this one, with each stream relayed by `HTTP2StreamRelay` to the app (inbound)
    /// or a per-upstream egress listener's upstream, over one HTTP/2 connection opened with it.
    /// This handler only passes the connection's bytes on from here.
    fileprivate func startHTTP2(_ bytes: ByteBuffer) {
        keepAlive = false
        let snapshot = runtime.configuration.snapshot
        let route = captured.map { Router.capturedHTTP2Route(direction: runtime.direction, destination: $0, snapshot: snapshot) }
            ?? Router.http2Route(direction: runtime.direction, snapshot: snapshot)
        guard case .forward(let target) = route.outcome else {
            refuseHTTP2(route, snapshot: snapshot, bytes: bytes)
            return
        }
        relayHTTP2(bytes, route: route, target: target, snapshot: snapshot)
    }

    /// The connection's bytes from here on belong to NIO's HTTP/2 handler, with each stream
    /// relayed to `target` over one HTTP/2 connection.
    private func relayHTTP2(_ bytes: ByteBuffer, route: Route, target: UpstreamTarget, snapshot: ConfigurationBox.Snapshot) {
        guard let context else { return }
        keepAlive = false
        // Streams are long-lived and may be quiet for a long time: the connection keeps its own
        // idle timer (no stream open), not the HTTP/1 header and body timers.
        timeouts?.phase(.requestComplete)
        let connection = HTTP2Connection(
            runtime: runtime, snapshot: snapshot, route: route, target: target, downstream: context.channel,
            downstreamAddress: downstreamAddress)
        do {
            _ = try context.pipeline.syncOperations.configureHTTP2Pipeline(
                mode: .server, connectionConfiguration: .init(), streamConfiguration: .init(),
                inboundStreamInitializer: connection.streamInitializer(loop: context.eventLoop))
        } catch {
            runtime.logger.warning("could not set up HTTP/2", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        http2 = connection
        connection.started()
        context.fireChannelRead(NIOAny(bytes))
    }

    /// HTTP/2 where it has no destination: an HTTP/2 client cannot read an HTTP/1 answer, so the
    /// connection just closes, and a span says why.
    private func refuseHTTP2(_ route: Route, snapshot: ConfigurationBox.Snapshot, bytes: ByteBuffer) {
        guard let context else { return }
        let direction = runtime.direction
        let trace = TraceDecision.decide(scan: RequestHeadScan(HTTPHeaders()), path: "*", snapshot: snapshot, random: &random)
        var hop = HopRecord(
            direction: direction, context: trace.context, sampled: trace.sampled, startNanos: Clock.wallNanos(), durationNanos: 0,
            method: "PRI", path: "*", authority: "", httpProtocol: "HTTP/2", statusCode: 400, requestID: trace.requestID,
            downstreamAddress: downstreamAddress, sourceService: direction == .inbound ? nil : snapshot.config.serviceName,
            destinationService: route.destinationService, upstreamCluster: route.clusterName)
        hop.requestBytes = bytes.readableBytes
        if case .reject(_, let flag, let reason) = route.outcome {
            hop.responseFlags = flag.map { [$0] } ?? []
            hop.failureReason = reason
        }
        let flags = hop.responseFlags
        runtime.telemetry.record(hop)
        runtime.stats.update { stats in
            stats.requestsTotal += 1
            for flag in flags { stats.responseFlags[flag, default: 0] += 1 }
        }
        rejected = true
        context.close(promise: nil)
    }

    /// Every `tcpReportingIntervalMillis` while the tunnel is open, the bytes since the last report
    /// go to the TCP metrics, so a long-lived connection's traffic shows while it lasts.
    private func scheduleTunnelReport(_ ex: Exchange) {
        guard let context else { return }
        let interval = TimeAmount.milliseconds(max(1, ex.snapshot.config.tcpReportingIntervalMillis))
        ex.tunnelReport = context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            guard self.exchange === ex, ex.isTunnel, !ex.responseDone else { return }
            let sent = ex.hop.responseBytes - ex.hop.tunnelBytesReported.response
            let received = ex.hop.requestBytes - ex.hop.tunnelBytesReported.request
            if sent > 0 || received > 0 {
                self.runtime.telemetry.tunnelProgress(ex.hop, sent: sent, received: received)
                ex.hop.tunnelBytesReported = (ex.hop.requestBytes, ex.hop.responseBytes)
            }
            self.scheduleTunnelReport(ex)
        }
    }

    /// Either end closed: the tunnel's span and metrics are recorded over its whole life.
    private func endTunnel(_ ex: Exchange) {
        if ex.connectPreface != nil {
            // Closed before its first bytes told what it carried: a tunnel all the same, opened
            // and closed, so the TCP counts stay paired.
            ex.connectPreface = nil
            runtime.telemetry.tunnelOpened(ex.hop)
        }
        ex.responseDone = true
        ex.requestEnded = true
        ex.endMono = Clock.monoNanos()
        finishRecord(ex)
        cleanup(ex)
        exchange = nil
    }
}
