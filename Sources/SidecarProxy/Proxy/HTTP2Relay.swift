import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import TraceModel

/// One downstream HTTP/2 prior-knowledge connection (gRPC over h2c), read stream by stream.
/// Its streams go out over one HTTP/2 connection to the route's target, opened along with it, so
/// every call gets its own span, trace headers and Istio metrics, as Envoy gives gRPC calls.
/// Everything here runs on the downstream channel's event loop: the upstream connection is
/// opened on it, and both connections' stream channels live on it.
final class HTTP2Connection {
    let runtime: ListenerRuntime
    /// The configuration the connection started under: its destination and timeouts. Each call
    /// reads the configuration in force when it starts.
    let snapshot: ConfigurationBox.Snapshot
    let route: Route
    let target: UpstreamTarget
    let downstreamAddress: String?
    /// The upstream's circuit breaker and retry budget, shared with HTTP/1 requests to it.
    let cluster: ClusterState
    var random = FastRandom()
    private weak var downstream: (any Channel)?
    private var upstream = Upstream.idle
    /// Connect attempts retried for the calls now waiting (reset once a connection is up).
    private var connectRetries = 0
    private var retryTask: Scheduled<Void>?
    private var activeStreams = 0
    private var draining = false
    private var closed = false
    private var idleTimer: Scheduled<Void>?

    private enum Upstream {
        /// Not connected: the next stream connects.
        case idle
        case connecting([HTTP2StreamRelay])
        case ready(any Channel, NIOHTTP2Handler.StreamMultiplexer, address: String?)
    }

    init(runtime: ListenerRuntime, snapshot: ConfigurationBox.Snapshot, route: Route, target: UpstreamTarget,
         downstream: any Channel, downstreamAddress: String?) {
        self.runtime = runtime
        self.snapshot = snapshot
        self.route = route
        self.target = target
        self.downstream = downstream
        self.downstreamAddress = downstreamAddress
        cluster = runtime.clusters.cluster(for: target)
    }

    /// The stream handler for each stream the client opens.
    func streamInitializer(loop: any EventLoop) -> NIOChannelInitializer {
        let connection = NIOLoopBound(self, eventLoop: loop)
        return { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2StreamRelay(connection: connection.value))
            }
        }
    }

    // MARK: Streams

    /// A connection that never opens a stream closes after the idle timeout too.
    func started() {
        armIdleTimer()
    }

    func streamStarted() {
        activeStreams += 1
        idleTimer?.cancel()
        idleTimer = nil
    }

    func streamFinished() {
        activeStreams -= 1
        guard activeStreams == 0 else { return }
        if draining, let downstream {
            // After the turn that recorded the last stream, whose final frames flush in it.
            downstream.eventLoop.assumeIsolated().execute { downstream.close(promise: nil) }
        } else {
            armIdleTimer()
        }
    }

    /// A stream wants its upstream end: at once when connected, else once the connection is up.
    /// A call waiting for the connection is a pending request to the circuit breaker, as an
    /// HTTP/1 request waiting for a pooled connection is.
    func openStream(for relay: HTTP2StreamRelay) {
        if case .ready(_, let multiplexer, let address) = upstream {
            relay.attach(multiplexer, upstreamAddress: address)
            return
        }
        let config = relay.snapshot.config
        guard cluster.tryReservePending(max: config.maxPendingRequests) else {
            relay.upstreamUnavailable(status: 503, flags: ["UO"], reason: "upstream overflow: \(config.maxPendingRequests) requests already pending")
            return
        }
        switch upstream {
        case .connecting(var waiting):
            waiting.append(relay)
            upstream = .connecting(waiting)
        case .idle:
            upstream = .connecting([relay])
            connect()
        case .ready:
            break  // handled above
        }
    }

    private func connect() {
        guard let loop = downstream?.eventLoop else { return }
        let config = snapshot.config
        guard cluster.tryReserveConnection(max: config.maxConnections) else {
            failWaiting(status: 503, flags: ["UO"], reason: "upstream overflow: \(config.maxConnections) connections to \(target.address) already open")
            return
        }
        let timeout = TimeAmount.milliseconds(config.connectTimeoutMillis)
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The app does not open streams toward the proxy (no server push).
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { pushed in pushed.close() }
                }
            }
            .bindingSource(of: target)
            .connect(host: target.host, port: target.port)
            .assumeIsolated()
            .flatMapThrowing { channel in
                try SelfConnection.refuse(channel)
                return (channel, try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer())
            }
            .whenComplete { [self] result in self.connected(result) }
    }

    private func connected(_ result: Result<(any Channel, NIOHTTP2Handler.StreamMultiplexer), any Error>) {
        if case .success(let (channel, _)) = result {
            let cluster = self.cluster
            channel.closeFuture.whenComplete { _ in cluster.releaseConnection() }
        } else {
            cluster.releaseConnection()
        }
        // The client may have gone while this connected: then nothing waits for the connection.
        guard case .connecting(let waiting) = upstream, !closed else {
            if case .success(let (channel, _)) = result { channel.close(promise: nil) }
            return
        }
        switch result {
        case .success(let (channel, multiplexer)):
            let address = channel.remoteAddress.map(UpstreamPool.describe)
            upstream = .ready(channel, multiplexer, address: address)
            connectRetries = 0
            channel.closeFuture.assumeIsolated().whenComplete { [self] _ in
                if case .ready(let current, _, _) = self.upstream, current === channel { self.upstream = .idle }
            }
            for relay in waiting {
                cluster.releasePending()
                relay.attach(multiplexer, upstreamAddress: address)
            }
        case .failure(let error):
            let config = snapshot.config
            let timedOut: Bool
            if let channelError = error as? ChannelError, case .connectTimeout = channelError { timedOut = true } else { timedOut = false }
            // Retried within the per-request limit and the cluster's retry budget, with
            // Envoy's back-off, as an HTTP/1 request's connect failure is; the calls keep waiting.
            if connectRetries < config.maxRetries,
               cluster.tryStartRetry(percent: config.retryBudgetPercent, minConcurrency: config.minRetryConcurrency) {
                connectRetries += 1
                runtime.stats.update { $0.upstreamRetries += 1 }
                for relay in waiting { relay.retried() }
                let base = Int64(25) << Int64(min(connectRetries - 1, 6))
                let delay = base / 2 + Int64(random.next() % UInt64(max(base, 1)))
                retryTask = downstream?.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(delay)) { [self] in
                    self.retryTask = nil
                    self.cluster.retryFinished()
                    guard case .connecting(let still) = self.upstream, !still.isEmpty, !self.closed else { return }
                    self.connect()
                }
                return
            }
            var flags = [timedOut ? "UT" : "UF"]
            if config.maxRetries > 0 { flags.append("URX") }
            let retried = ProxyHandler.afterRetries(connectRetries)
            failWaiting(status: timedOut ? 504 : 503, flags: flags,
                        reason: "upstream connect error: \(timedOut ? "timed out" : "\(error)") to \(target.address)\(retried)")
        }
    }

    /// Every call waiting for the connection gets a local reply; the next call starts afresh.
    private func failWaiting(status: Int, flags: [String], reason: String) {
        guard case .connecting(let waiting) = upstream else { return }
        upstream = .idle
        connectRetries = 0
        for relay in waiting {
            cluster.releasePending()
            relay.upstreamUnavailable(status: status, flags: flags, reason: reason)
        }
    }

    /// A call gave up (reset, timed out) while waiting for the connection.
    func abandon(_ relay: HTTP2StreamRelay) {
        guard case .connecting(var waiting) = upstream, let index = waiting.firstIndex(where: { $0 === relay }) else { return }
        waiting.remove(at: index)
        cluster.releasePending()
        upstream = .connecting(waiting)
    }

    // MARK: Connection lifecycle

    /// Shutdown: no new streams (GOAWAY), and the connection closes once its streams are done.
    func drain() {
        guard !draining, let downstream else { return }
        draining = true
        let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
        downstream.pipeline.syncOperations.writeAndFlush(NIOAny(goAway), promise: nil)
        if activeStreams == 0 { downstream.close(promise: nil) }
    }

    func downstreamClosed() {
        closed = true
        idleTimer?.cancel()
        idleTimer = nil
        if let retryTask {
            retryTask.cancel()
            self.retryTask = nil
            cluster.retryFinished()
        }
        if case .connecting(let waiting) = upstream {
            for _ in waiting { cluster.releasePending() }
        }
        if case .ready(let channel, _, _) = upstream { channel.close(promise: nil) }
        upstream = .idle
    }

    private func armIdleTimer() {
        guard let downstream, idleTimer == nil else { return }
        idleTimer = downstream.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(snapshot.config.idleTimeoutMillis)) { [self] in
            self.idleTimer = nil
            if self.activeStreams == 0 { self.downstream?.close(promise: nil) }
        }
    }
}

/// The downstream end of one HTTP/2 stream: reads the request's HEADERS into a hop (trace
/// context, sampling, request id, the same as an HTTP/1 request), sends the call on to the
/// upstream with this hop's trace headers, and relays frames both ways with backpressure (a side
/// is read only while the other can take more). Records the hop once both directions have
/// ended, or the stream was reset.
final class HTTP2StreamRelay: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let connection: HTTP2Connection
    private var context: ChannelHandlerContext?
    private var hop: HopRecord?
    private var startMono: UInt64 = 0
    private var upstream: HTTP2UpstreamStream?
    /// Request frames that came before the upstream stream was open.
    private var pending: [HTTP2Frame.FramePayload] = []
    private var requestEnded = false
    private var responseStarted = false
    private var responseEnded = false
    private var finished = false
    private var heldRead = HeldRead()
    private var isGRPC = false
    private var requestMessages = GRPCMessageCounter()
    private var responseMessages = GRPCMessageCounter()
    /// The configuration in force when the call started.
    private(set) var snapshot: ConfigurationBox.Snapshot
    private var answerDeadline: Scheduled<Void>?
    private var callDeadline: Scheduled<Void>?
    private var countedInCluster = false

    init(connection: HTTP2Connection) {
        snapshot = connection.snapshot
        self.connection = connection
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        guard !finished else { return }
        switch payload {
        case .headers(let headers):
            if hop == nil {
                start(headers.headers, endStream: headers.endStream)
                return
            }
            if headers.endStream { requestEnded = true }
            forward(payload)
        case .data(let data):
            hop?.requestBytes += data.data.readableBytes
            if isGRPC, case .byteBuffer(let bytes) = data.data { requestMessages.consume(bytes) }
            if data.endStream { requestEnded = true }
            forward(payload)
        case .rstStream(let code):
            hop?.responseFlags.append("DR")
            if hop?.failureReason == nil { hop?.failureReason = "downstream reset the stream (\(code))" }
            let appStream = upstream
            finish()  // before the reset, whose close would otherwise read as the upstream's doing
            appStream?.reset(code)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        upstream?.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        heldRead.read(context, hold: hop != nil && !requestEnded && !(upstream?.isWritable ?? false))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { upstream?.resumeReads() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The stream closed: normally after both ends, else the client went away mid-call.
        if !finished {
            hop?.responseFlags.append("DC")
            if hop?.failureReason == nil { hop?.failureReason = "downstream stream closed before the response completed" }
            if !responseStarted { hop?.statusCode = nil }
            let appStream = upstream
            finish()
            appStream?.reset(.cancel)
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        connection.runtime.logger.debug("h2 downstream stream error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Request

    private func start(_ headers: HPACKHeaders, endStream: Bool) {
        startMono = Clock.monoNanos()
        // Read per call, not per connection: gRPC connections live long, and telemetry settings
        // (sampling, propagation, custom tags) change live.
        let snapshot = connection.runtime.configuration.snapshot
        self.snapshot = snapshot
        let config = snapshot.config
        let direction = connection.runtime.direction
        let method = headers.first(name: ":method") ?? ""
        let path = headers.first(name: ":path") ?? ""
        let authority = headers.first(name: ":authority") ?? headers.first(name: "host") ?? ""
        isGRPC = headers.first(name: "content-type")?.hasPrefix("application/grpc") ?? false

        let scan = RequestHeadScan(HTTP2Fields.plain(headers))
        let trace = TraceDecision.decide(scan: scan, path: path, snapshot: snapshot, random: &connection.random)
        var added = AddedHeaders(reservingCapacity: 12)
        let sourceService = ProxyHandler.addMeshMarkers(direction: direction, serviceName: config.serviceName, scan: scan, into: &added)
        TraceDecision.inject(trace, formats: config.propagation, into: &added)

        let tags = scan.customTagValues(config.customTags)
        var hop = HopRecord(
            direction: direction, context: trace.context, sampled: trace.sampled, startNanos: Clock.wallNanos(), durationNanos: 0,
            method: method, path: path, authority: authority, httpProtocol: "HTTP/2", statusCode: nil, requestID: trace.requestID,
            userAgent: scan.userAgent, downstreamAddress: connection.downstreamAddress, sourceService: sourceService,
            destinationService: connection.route.destinationService, upstreamCluster: connection.route.clusterName, customTags: tags)
        hop.propagationExtracted = ProxyHandler.formatList(trace.extracted)
        if !trace.disagreeing.isEmpty { hop.propagationDisagreed = ProxyHandler.formatList(trace.disagreeing) }
        if direction == .inbound { hop.propagationInjected = snapshot.propagationInjected }
        hop.upstreamSampled = trace.upstreamSampled
        hop.isGRPC = isGRPC
        self.hop = hop
        connection.runtime.stats.requestStarted()
        connection.streamStarted()

        guard !method.isEmpty, !path.isEmpty else {
            localReply(status: 400, flags: ["DPE"], reason: "HTTP/2 request without :method or :path")
            return
        }
        requestEnded = endStream
        connection.cluster.requestStarted()
        countedInCluster = true
        startDeadline(config: config, grpcTimeout: headers.first(name: "grpc-timeout"), context: context)
        pending.append(.headers(.init(headers: HTTP2Fields.upstream(headers, added: added.fields), endStream: endStream)))
        connection.openStream(for: self)
    }

    /// Two deadlines. The request timeout runs until the response's headers arrive: a call that
    /// streams for an hour is fine once it has answered, where a whole-call limit (Envoy's route
    /// timeout) cuts every long stream at 15 s unless turned off. The caller's `grpc-timeout`
    /// covers the whole call, as gRPC means it (Envoy honours it under `max_grpc_timeout`).
    private func startDeadline(config: SidecarConfiguration, grpcTimeout: String?, context: ChannelHandlerContext?) {
        guard let context else { return }
        let loop = context.eventLoop
        let timers = connection.runtime.timers
        if config.requestTimeoutMillis > 0 {
            let millis = config.requestTimeoutMillis
            answerDeadline = timers.schedule(at: timers.now(on: loop) + .milliseconds(millis), on: loop) { [self] in
                self.answerDeadline = nil
                self.timedOut(reason: "upstream request timeout after \(millis) ms")
            }
        }
        if let millis = grpcTimeout.flatMap(HTTP2Fields.grpcTimeoutMillis) {
            callDeadline = timers.schedule(at: timers.now(on: loop) + .milliseconds(millis), on: loop) { [self] in
                self.callDeadline = nil
                self.timedOut(reason: "grpc-timeout of \(millis) ms reached")
            }
        }
    }

    /// Past the deadline: a gRPC call ends DEADLINE_EXCEEDED (trailers-only, or trailers after
    /// the response that has started, as Envoy and linkerd now answer timeouts), anything else
    /// 504, or a reset once its response has started. Flag `UT` either way.
    private func timedOut(reason: String) {
        guard !finished, let context else { return }
        // The app's stream is reset after the call is answered: its close would otherwise
        // report the upstream gone (UC) first.
        let appStream = upstream
        defer { appStream?.reset(.cancel) }
        connection.abandon(self)
        if !responseStarted {
            localReply(status: 504, flags: ["UT"], reason: reason, grpcStatus: 4)
            return
        }
        hop?.responseFlags.append("UT")
        hop?.failureReason = reason + " (response incomplete)"
        if isGRPC {
            hop?.grpcStatus = 4
            let trailers: HPACKHeaders = ["grpc-status": "4", "grpc-message": HTTP2Fields.grpcMessage(reason)]
            finish()
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
        } else {
            finish()
            context.writeAndFlush(wrapOutboundOut(.rstStream(.cancel)), promise: nil)
        }
    }

    /// The connection retried its connect for this waiting call.
    func retried() {
        hop?.retries += 1
    }

    private func forward(_ payload: HTTP2Frame.FramePayload) {
        if let upstream {
            upstream.write(payload)
        } else {
            pending.append(payload)
        }
    }

    /// The upstream connection is up: open this call's stream on it and send what has come.
    func attach(_ multiplexer: NIOHTTP2Handler.StreamMultiplexer, upstreamAddress: String?) {
        guard !finished, let context else { return }
        hop?.upstreamAddress = upstreamAddress
        let relay = NIOLoopBound(self, eventLoop: context.eventLoop)
        let promise = context.eventLoop.makePromise(of: (any Channel).self)
        multiplexer.createStreamChannel(promise: promise) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(HTTP2UpstreamStream(relay: relay.value))
            }
        }
        promise.futureResult.assumeIsolated().whenComplete { [self] result in
            switch result {
            case .success(let channel):
                guard let stream = try? channel.pipeline.syncOperations.handler(type: HTTP2UpstreamStream.self) else { return }
                guard !self.finished else {
                    stream.reset(.cancel)
                    return
                }
                self.upstream = stream
                for payload in self.pending { stream.write(payload) }
                self.pending = []
                stream.flush()
                self.heldRead.resume(self.context)  // reads wait for the upstream stream to exist
            case .failure(let error):
                self.upstreamUnavailable(status: 503, flags: ["UF"], reason: "could not open an upstream stream: \(error)")
            }
        }
    }

    // MARK: Response

    func responseFrame(_ payload: HTTP2Frame.FramePayload) {
        guard !finished, let context else { return }
        switch payload {
        case .headers(let headers):
            if let status = headers.headers.first(name: ":status").flatMap({ Int($0) }), !(100..<200).contains(status) {
                responseStarted = true
                hop?.statusCode = status
                answerDeadline?.cancel()  // answered: the stream may now run as long as it needs
                answerDeadline = nil
            }
            if let grpc = headers.headers.first(name: "grpc-status").flatMap({ Int($0) }) { hop?.grpcStatus = grpc }
            if headers.endStream { responseEnded = true }
        case .data(let data):
            hop?.responseBytes += data.data.readableBytes
            if isGRPC, case .byteBuffer(let bytes) = data.data { responseMessages.consume(bytes) }
            if data.endStream { responseEnded = true }
        case .rstStream(let code):
            hop?.responseFlags.append("UR")
            if hop?.failureReason == nil { hop?.failureReason = "upstream reset the stream (\(code))" }
            finish()
            context.writeAndFlush(wrapOutboundOut(.rstStream(code)), promise: nil)
            return
        default:
            return
        }
        context.write(wrapOutboundOut(payload), promise: nil)
        if responseEnded {
            // Recorded before the flush: the flush ends the stream, and its close arrives inside it.
            if requestEnded { finish() }
            context.flush()
        }
    }

    func responseReadComplete() {
        context?.flush()
    }

    /// The upstream stream closed before its response ended (the app's connection went away).
    func upstreamStreamClosed() {
        upstream = nil
        guard !finished, !responseEnded else { return }
        if responseStarted {
            hop?.responseFlags.append("UC")
            hop?.failureReason = "upstream stream closed before the response completed"
            finish()
            context?.writeAndFlush(wrapOutboundOut(.rstStream(.internalError)), promise: nil)
        } else {
            upstreamUnavailable(status: 503, flags: ["UC"], reason: "upstream closed the stream before answering")
        }
    }

    func upstreamWritabilityChanged(writable: Bool) {
        if writable { heldRead.resume(context) }
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// No upstream to send to: a gRPC call gets gRPC's answer for it (UNAVAILABLE, in a
    /// trailers-only response, as Envoy's local replies to gRPC are), anything else the status.
    func upstreamUnavailable(status: Int, flags: [String], reason: String) {
        localReply(status: status, flags: flags, reason: reason)
    }

    private func localReply(status: Int, flags: [String], reason: String, grpcStatus: Int = 14) {
        guard !finished, let context else { return }
        hop?.responseFlags.append(contentsOf: flags)
        hop?.failureReason = reason
        responseStarted = true
        responseEnded = true
        requestEnded = true  // whatever else the client sends for this stream is dropped
        var frames: [HTTP2Frame.FramePayload]
        if isGRPC {
            hop?.statusCode = 200
            hop?.grpcStatus = grpcStatus
            let headers: HPACKHeaders = [
                ":status": "200", "content-type": "application/grpc", "grpc-status": String(grpcStatus),
                "grpc-message": HTTP2Fields.grpcMessage(reason),
            ]
            frames = [.headers(.init(headers: headers, endStream: true))]
        } else {
            hop?.statusCode = status
            let body = context.channel.allocator.buffer(string: reason + "\n")
            let headers: HPACKHeaders = [":status": String(status), "content-type": "text/plain", "content-length": String(body.readableBytes)]
            hop?.responseBytes = body.readableBytes
            frames = [.headers(.init(headers: headers)), .data(.init(data: .byteBuffer(body), endStream: true))]
        }
        connection.runtime.stats.update { $0.localReplies += 1 }
        finish()  // before the writes, which end the stream
        for frame in frames { context.write(wrapOutboundOut(frame), promise: nil) }
        context.flush()
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        pending = []
        answerDeadline?.cancel()
        answerDeadline = nil
        callDeadline?.cancel()
        callDeadline = nil
        if upstream == nil { connection.abandon(self) }  // still waiting for the connection
        if countedInCluster {
            countedInCluster = false
            connection.cluster.requestFinished()
        }
        guard var hop else { return }
        self.hop = nil
        hop.durationNanos = Clock.monoNanos() &- startMono
        if isGRPC {
            hop.grpcMessages = (requestMessages.messages, responseMessages.messages)
        }
        let flags = hop.responseFlags
        connection.runtime.telemetry.record(hop)
        connection.runtime.stats.requestFinished(flags: flags)
        connection.streamFinished()
    }
}

/// The upstream end of one relayed HTTP/2 stream: hands the app's frames to the relay.
final class HTTP2UpstreamStream: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var relay: HTTP2StreamRelay?
    private var context: ChannelHandlerContext?
    private var heldRead = HeldRead()

    init(relay: HTTP2StreamRelay) {
        self.relay = relay
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func write(_ payload: HTTP2Frame.FramePayload) {
        context?.write(wrapOutboundOut(payload), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    func reset(_ code: HTTP2ErrorCode) {
        context?.writeAndFlush(wrapOutboundOut(.rstStream(code)), promise: nil)
        relay = nil
    }

    func resumeReads() {
        heldRead.resume(context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        relay?.responseFrame(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        relay?.responseReadComplete()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        heldRead.read(context, hold: !(relay?.isWritable ?? true))
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        relay?.upstreamWritabilityChanged(writable: context.channel.isWritable)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        let relay = self.relay
        self.relay = nil
        relay?.upstreamStreamClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// HTTP/2 field lists for the relay.
enum HTTP2Fields {
    /// gRPC's `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n), in whole
    /// milliseconds rounded up (a 1 ns deadline is still a deadline). Nil when malformed.
    static func grpcTimeoutMillis(_ value: String) -> Int64? {
        let utf8 = Array(value.utf8)
        guard (2...9).contains(utf8.count), let unit = utf8.last else { return nil }
        var amount: Int64 = 0
        for byte in utf8.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        // In milliseconds from the start: eight digits of hours still fit in 64 bits.
        switch unit {
        case UInt8(ascii: "H"): return amount * 3_600_000
        case UInt8(ascii: "M"): return amount * 60_000
        case UInt8(ascii: "S"): return amount * 1_000
        case UInt8(ascii: "m"): return amount
        case UInt8(ascii: "u"): return (amount + 999) / 1_000
        case UInt8(ascii: "n"): return (amount + 999_999) / 1_000_000
        default: return nil
        }
    }

    /// The regular (non-pseudo) fields, for the same scan an HTTP/1 head gets.
    static func plain(_ headers: HPACKHeaders) -> HTTPHeaders {
        var plain = HTTPHeaders()
        for (name, value, _) in headers where !name.hasPrefix(":") {
            plain.add(name: name, value: value)
        }
        return plain
    }

    /// What goes upstream: the pseudo-fields, the fields an HTTP/1 hop would forward (trace
    /// context, the request id and meshtrace's markers are this hop's own, in `added`), and
    /// `te: trailers`, which HTTP/2 allows and gRPC servers require.
    static func upstream(_ headers: HPACKHeaders, added: [(String, String)]) -> HPACKHeaders {
        var out = HPACKHeaders()
        for (name, value, indexing) in headers where name.hasPrefix(":") {
            out.add(name: name, value: value, indexing: indexing)
        }
        for (name, value, indexing) in headers where !name.hasPrefix(":") {
            switch RequestHeadScan.classify(name) {
            case .forward, .userAgent, .clientTraceID, .forceTrace, .contentLength:
                out.add(name: name, value: value, indexing: indexing)
            case .hopByHop where name == "te" && value == "trailers":
                out.add(name: name, value: value, indexing: indexing)
            case .hopByHop, .upgrade, .host, .requestID, .downstreamCluster, .trace, .connection, .transferEncoding, .loopMarker, .expect:
                break
            }
        }
        for (name, value) in added { out.add(name: name.lowercased(), value: value) }
        return out
    }

    /// gRPC's `grpc-message`: percent-encoded outside printable ASCII (and `%` itself).
    static func grpcMessage(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}

/// Counts gRPC messages in one direction of a call as its DATA frames pass: each message is a
/// 5-byte prefix (compressed flag, 4-byte big-endian length) and that many bytes, and frames cut
/// across messages anywhere. Istio counts them for `istio_request_messages_total` and
/// `istio_response_messages_total`, which Kiali shows as gRPC message rates for streams.
struct GRPCMessageCounter {
    private(set) var messages = 0
    /// Bytes of the current message's body still to come.
    private var remaining = 0
    /// Prefix bytes read so far (0 at a message boundary).
    private var prefixRead = 0
    private var length: UInt32 = 0

    mutating func consume(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { consume($0) }
    }

    mutating func consume(_ bytes: UnsafeRawBufferPointer) {
        var i = 0
        while i < bytes.count {
            if remaining > 0 {
                let take = min(remaining, bytes.count - i)
                remaining -= take
                i += take
                continue
            }
            // In a prefix: byte 0 is the flag, bytes 1...4 the length.
            if prefixRead > 0 { length = length << 8 | UInt32(bytes[i]) }
            prefixRead += 1
            i += 1
            if prefixRead == 5 {
                messages += 1
                remaining = Int(length)
                prefixRead = 0
                length = 0
            }
        }
    }
}
