import Logging
import NIOCore
import NIOHTTP1
import TraceModel

// MARK: - CONNECT tunnels

extension ProxyHandler: TunnelDelegate {
    /// Connects to the target; on success answers 200 and from then on passes bytes both ways.
    /// A refused or timed-out connect answers 503 UF or 504 UT, as for any upstream.
    func openTunnel(_ ex: Exchange, to target: UpstreamTarget) {
        ex.isTunnel = true
        connectDedicated(ex, to: target) { [self] result in
            self.tunnelConnected(result, ex)
        }
    }

    /// A connection of the exchange's own to `target` (a tunnel, a WebSocket), counted against
    /// the upstream's circuit breaker as pooled ones are: long-lived connections are what
    /// `--max-connections` is for. Past it the request gets 503 `UO`, and no connect.
    func connectDedicated(
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

    func tunnelConnected(_ result: Result<(any Channel, TunnelHandler), any Error>, _ ex: Exchange) {
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
    func openUpgrade(_ ex: Exchange, to target: UpstreamTarget) {
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
    func readUpgradeStatus(_ bytes: ByteBuffer, _ ex: Exchange) {
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
    func tunnelOpened(_ ex: Exchange) {
        runtime.telemetry.tunnelOpened(ex.hop)
        scheduleTunnelReport(ex)
    }

    /// Client bytes for an open tunnel. While a CONNECT to a mesh service is undecided they go
    /// through the preface probe first: the HTTP/2 preface turns the connection into an HTTP/2
    /// relay to that service (a span per call, as on an egress listener), anything else is a
    /// tunnel as usual.
    func tunnelClientBytes(_ bytes: ByteBuffer, _ ex: Exchange) {
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
            let early = ex.heldUpstream
            ex.heldUpstream = []
            for bytes in early { tunnelReceived(bytes) }
            if !early.isEmpty { context?.flush() }
        case .http2(let held):
            // The relay opens its own connection: what the tunnel's target sent goes nowhere.
            ex.connectPreface = nil
            ex.heldUpstream = []
            relayTunnelAsHTTP2(ex, held)
        }
    }

    /// Whether `bytes` begin with an HTTP/2 SETTINGS frame on stream 0 (a server's preface):
    /// 3-byte length (a multiple of 6), type 4, flags, stream 0.
    static func isHTTP2Settings(_ bytes: ByteBuffer) -> Bool {
        guard bytes.readableBytes >= 9, let head = bytes.getBytes(at: bytes.readerIndex, length: 9) else { return false }
        let length = Int(head[0]) << 16 | Int(head[1]) << 8 | Int(head[2])
        return head[3] == 0x04 && length % 6 == 0 && head[5] & 0x7F == 0 && head[6] == 0 && head[7] == 0 && head[8] == 0
    }

    /// gRPC (h2c) inside a CONNECT to a mesh service: the raw connection opened for the tunnel
    /// closes unused, the CONNECT itself is no span (the calls are, each its own), and the
    /// client's connection is read as HTTP/2 from here, as a per-upstream egress listener's is.
    func relayTunnelAsHTTP2(_ ex: Exchange, _ bytes: ByteBuffer) {
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
            // An HTTP/2 server (a gRPC one) sends its SETTINGS as soon as it is connected, before
            // the client's preface: held until the client's first bytes decide. grpcio and curl
            // wait for the 200 before their preface, so without this their calls were tunnelled
            // raw, with no span and the caller's trace headers passed on untouched.
            if !ex.heldUpstream.isEmpty || Self.isHTTP2Settings(bytes) {
                ex.heldUpstream.append(bytes)
                return
            }
            // The target spoke first, and not HTTP/2: a server-first protocol, not gRPC. What
            // the client sent so far goes to it.
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
    func startHTTP2(_ bytes: ByteBuffer) {
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
    func relayHTTP2(_ bytes: ByteBuffer, route: Route, target: UpstreamTarget, snapshot: ConfigurationBox.Snapshot) {
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
    func refuseHTTP2(_ route: Route, snapshot: ConfigurationBox.Snapshot, bytes: ByteBuffer) {
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
    func scheduleTunnelReport(_ ex: Exchange) {
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
    func endTunnel(_ ex: Exchange) {
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
