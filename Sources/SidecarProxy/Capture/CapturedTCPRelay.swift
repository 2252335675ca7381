import NIOCore
import TraceModel

/// A captured connection that is not HTTP (TLS, a database protocol), relayed byte for byte to
/// where it was going, as Envoy's `tcp_proxy` relays it, with backpressure both ways. Istio's
/// TCP metrics count it: opened when accepted, bytes each way every TCP reporting interval and
/// at the end, closed when either side closes. It makes no span: there is no request and no
/// trace context to carry (Envoy's TCP proxy makes none either).
final class CapturedTCPRelay: ChannelInboundHandler, ChannelOutboundHandler, TunnelDelegate {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Client bytes held while the upstream connects, before reads from the client stop.
    static let pendingLimit = 64 * 1024

    private let runtime: ListenerRuntime
    private let route: Route
    private var hop: HopRecord
    private let startMono = Clock.monoNanos()
    private var context: ChannelHandlerContext?
    private var tunnel: TunnelHandler?
    private var pending: [ByteBuffer] = []
    private var pendingBytes = 0
    private var heldRead = HeldRead()
    private var report: Scheduled<Void>?
    private var finished = false

    init(runtime: ListenerRuntime, route: Route, downstreamAddress: String?, sourceService: String?) {
        self.runtime = runtime
        self.route = route
        var random = FastRandom()
        let context = TraceContext(traceID: .random(using: &random), spanID: .random(using: &random), sampled: false)
        hop = HopRecord(
            direction: runtime.direction, context: context, sampled: false, startNanos: Clock.wallNanos(), durationNanos: 0,
            method: "TCP", path: route.path, authority: "", httpProtocol: "TCP", statusCode: nil, requestID: "",
            downstreamAddress: downstreamAddress, sourceService: sourceService, destinationService: route.destinationService,
            upstreamCluster: route.clusterName)
        hop.isTunnel = true
        hop.isOpaqueTCP = true
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        runtime.telemetry.tunnelOpened(hop)
        switch route.outcome {
        case .reject(_, let flag, let reason):
            fail(flags: flag.map { [$0] } ?? [], reason: reason)
        case .forward(let target):
            connect(target, context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    private func connect(_ target: UpstreamTarget, _ context: ChannelHandlerContext) {
        let config = runtime.configuration.config
        let cluster = runtime.clusters.cluster(for: target)
        guard cluster.tryReserveConnection(max: config.maxConnections) else {
            fail(flags: ["UO"], reason: "upstream overflow: \(config.maxConnections) connections to \(target.address) already open")
            return
        }
        TunnelHandler.connect(on: context.eventLoop, to: target, timeout: .milliseconds(config.connectTimeoutMillis))
            .assumeIsolated()
            .whenComplete { [self] result in
                switch result {
                case .success(let (channel, tunnel)):
                    channel.closeFuture.whenComplete { _ in cluster.releaseConnection() }
                    self.connected(channel, tunnel)
                case .failure(let error):
                    cluster.releaseConnection()
                    self.fail(flags: ["UF"], reason: "upstream connect to \(target.address) failed: \(error)")
                }
            }
    }

    private func connected(_ channel: any Channel, _ tunnel: TunnelHandler) {
        guard let context, !finished else {
            channel.close(promise: nil)
            return
        }
        tunnel.delegate = self
        self.tunnel = tunnel
        hop.upstreamAddress = channel.remoteAddress.map(UpstreamPool.describe)
        for bytes in pending { tunnel.write(bytes) }
        pending = []
        pendingBytes = 0
        tunnel.flush()
        scheduleReport(context)
        heldRead.resume(context)
    }

    /// Closes the client's connection and records why (the connection never reached its target).
    private func fail(flags: [String], reason: String) {
        hop.responseFlags += flags
        hop.failureReason = reason
        runtime.logger.debug("captured TCP connection not relayed", metadata: ["reason": "\(reason)"])
        finish()
        context?.close(promise: nil)
    }

    // MARK: - Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        hop.requestBytes += bytes.readableBytes
        if let tunnel {
            tunnel.write(bytes)
        } else {
            pending.append(bytes)
            pendingBytes += bytes.readableBytes
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        tunnel?.flush()
        context.fireChannelReadComplete()
    }

    func read(context: ChannelHandlerContext) {
        let hold = tunnel.map { !$0.isWritable } ?? (pendingBytes >= Self.pendingLimit)
        heldRead.read(context, hold: hold)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { tunnel?.resumeReads() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        tunnel?.close()
        tunnel = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        runtime.logger.debug("captured TCP connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: - Target side (TunnelDelegate)

    var downstreamWritable: Bool { context?.channel.isWritable ?? false }

    func tunnelReceived(_ bytes: ByteBuffer) {
        hop.responseBytes += bytes.readableBytes
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func tunnelReadComplete() {
        context?.flush()
    }

    func tunnelWritabilityChanged() {
        guard tunnel?.isWritable == true, let context else { return }
        heldRead.resume(context)
    }

    /// The target closed: what it sent is flushed, then the client's side closes.
    func tunnelClosed(error: (any Error)?) {
        tunnel = nil
        if let error, hop.failureReason == nil {
            hop.failureReason = "upstream connection failed: \(error)"
            hop.responseFlags.append("UC")
        }
        context?.flush()
        context?.close(promise: nil)
    }

    // MARK: - Metrics

    /// Bytes since the last report go to the TCP metrics every reporting interval, so a
    /// long-lived connection's traffic shows while it lasts (Istio's `tcp_reporting_duration`).
    private func scheduleReport(_ context: ChannelHandlerContext) {
        let interval = TimeAmount.milliseconds(max(1, runtime.configuration.config.tcpReportingIntervalMillis))
        report = context.eventLoop.assumeIsolated().scheduleTask(in: interval) { [self] in
            guard !self.finished else { return }
            let sent = self.hop.responseBytes - self.hop.tunnelBytesReported.response
            let received = self.hop.requestBytes - self.hop.tunnelBytesReported.request
            if sent > 0 || received > 0 {
                self.runtime.telemetry.tunnelProgress(self.hop, sent: sent, received: received)
                self.hop.tunnelBytesReported = (self.hop.requestBytes, self.hop.responseBytes)
            }
            self.scheduleReport(context)
        }
    }

    /// Once, when either side has closed: the connection's closing record.
    private func finish() {
        guard !finished else { return }
        finished = true
        report?.cancel()
        report = nil
        hop.durationNanos = Clock.monoNanos() &- startMono
        runtime.telemetry.record(hop)
    }
}
