import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import TraceModel

/// The downstream end of one HTTP/2 stream: reads the request's HEADERS into a hop (trace
/// context, sampling, request id, the same as an HTTP/1 request), sends the call on to the
/// upstream with this hop's trace headers, and relays frames both ways with backpressure (a side
/// is read only while the other can take more). Records the hop once both directions have
/// ended, or the stream was reset.
final class HTTP2StreamRelay: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    let connection: HTTP2Connection
    private(set) var context: ChannelHandlerContext?
    var hop: HopRecord?
    private var startMono: UInt64 = 0
    var upstream: HTTP2UpstreamStream?
    /// Request frames that came before the upstream stream was open (or a retry resends).
    var pending: [HTTP2Frame.FramePayload] = []
    private(set) var requestEnded = false
    private(set) var responseStarted = false
    private var responseEnded = false
    private(set) var finished = false
    private var heldRead = HeldRead()
    private var isGRPC = false
    private var requestMessages = GRPCMessageCounter()
    private var responseMessages = GRPCMessageCounter()
    /// The configuration in force when the call started.
    private(set) var snapshot: ConfigurationBox.Snapshot
    private var answerDeadline: Scheduled<Void>?
    private var callDeadline: Scheduled<Void>?
    /// The cluster this call is counted active in (the connection may move to another endpoint).
    private(set) var countedInCluster: ClusterState?
    /// The request as sent, for a retry, and the call's attempts (`HTTP2StreamRelay+Retry.swift`):
    /// the endpoint of the current one, every endpoint tried, the per-try timer, the back-off
    /// before the next attempt and the retry-budget slot it holds meanwhile.
    var replay = HTTP2RequestReplay(keeping: false)
    private(set) var attemptEndpoint: Int?
    private(set) var triedEndpoints: [Int] = []
    var tryDeadline: Scheduled<Void>?
    var retryTask: Scheduled<Void>?
    var retrySlot: ClusterState?
    /// Inbound with parent inference on: this call's registration in `ParentInference`.
    private var inferenceToken: Int?

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
            replay.keep(payload)
            forward(payload)
        case .data(let data):
            hop?.requestBytes += data.data.readableBytes
            if isGRPC, case .byteBuffer(let bytes) = data.data { requestMessages.consume(bytes) }
            if data.endStream { requestEnded = true }
            replay.keep(payload)
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
        var added = AddedHeaders(reservingCapacity: 12)
        let start = HopStart.begin(
            scan: scan, path: path, direction: direction, snapshot: snapshot, inference: connection.runtime.inference,
            random: &connection.random, added: &added)
        let trace = start.trace
        inferenceToken = start.inferenceToken
        TraceDecision.inject(trace, formats: config.propagation, into: &added)

        let tags = scan.customTagValues(config.customTags)
        var hop = HopRecord(
            direction: direction, context: trace.context, sampled: trace.sampled, startNanos: Clock.wallNanos(), durationNanos: 0,
            method: method, path: path, authority: authority, httpProtocol: "HTTP/2", statusCode: nil, requestID: trace.requestID,
            userAgent: scan.userAgent, downstreamAddress: connection.downstreamAddress, sourceService: start.sourceService,
            destinationService: connection.route.destinationService, upstreamCluster: connection.route.clusterName, customTags: tags,
            parentInferred: start.parentInferred)
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
        if start.looped {
            localReply(status: 508, flags: [], reason: LoopGuard.reason)
            return
        }
        requestEnded = endStream
        connection.cluster.requestStarted()
        countedInCluster = connection.cluster
        startDeadline(config: config, grpcTimeout: headers.first(name: "grpc-timeout"), context: context)
        let head = HTTP2Frame.FramePayload.headers(.init(headers: HTTP2Fields.upstream(headers, added: added.fields), endStream: endStream))
        let policy = snapshot.retryPolicy
        // Kept only where a retry may send it again: a status retry, or a per-try timeout.
        let perTry = Deadlines(config).millis(.perTry) != nil
        replay = HTTP2RequestReplay(
            keeping: policy.maxRetries > 0 && (policy.keepsBodies(direction: direction) || (perTry && policy.retriesTimeouts(direction: direction))))
        replay.keep(head)
        pending.append(head)
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
        let deadlines = Deadlines(config, grpcTimeout: grpcTimeout)
        if let millis = deadlines.millis(.request) {
            answerDeadline = timers.schedule(at: timers.now(on: loop) + .milliseconds(millis), on: loop) { [self] in
                self.answerDeadline = nil
                self.timedOut(reason: deadlines.reason(.request))
            }
        }
        if let millis = deadlines.millis(.grpc) {
            callDeadline = timers.schedule(at: timers.now(on: loop) + .milliseconds(millis), on: loop) { [self] in
                self.callDeadline = nil
                self.timedOut(reason: deadlines.reason(.grpc))
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
            armTryTimer()  // once the request has ended
        } else {
            pending.append(payload)
        }
    }

    /// The upstream connection is up: open this call's stream on it and send what has come.
    /// - Parameter endpoint: for a service with several endpoints, the one this attempt goes to.
    func attach(_ multiplexer: NIOHTTP2Handler.StreamMultiplexer, upstreamAddress: String?, endpoint: Int?) {
        guard !finished, let context else { return }
        hop?.upstreamAddress = upstreamAddress
        attemptEndpoint = endpoint
        if let endpoint, !triedEndpoints.contains(endpoint) { triedEndpoints.append(endpoint) }
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
                self.armTryTimer()
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
                connection.recordOutcome(.response(status), endpoint: attemptEndpoint)
                cancelTryTimer()
                if !responseStarted, retriesAnswer(status: status) { return }  // nothing of it reached the client
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

    func localReply(status: Int, flags: [String], reason: String, grpcStatus: Int = 14) {
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
        endAttempts()
        answerDeadline?.cancel()
        answerDeadline = nil
        callDeadline?.cancel()
        callDeadline = nil
        if upstream == nil { connection.abandon(self) }  // still waiting for the connection
        if let counted = countedInCluster {
            countedInCluster = nil
            counted.requestFinished()
        }
        // Answered: no longer the cause of the app's outbound calls.
        if let token = inferenceToken {
            inferenceToken = nil
            connection.runtime.inference.finished(token)
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
