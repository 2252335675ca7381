import NIOCore
import NIOPosix

/// What the upstream end of a CONNECT tunnel tells the downstream connection it belongs to.
protocol TunnelDelegate: AnyObject {
    /// The client can take more bytes: while it cannot, the tunnel stops reading its target.
    var downstreamWritable: Bool { get }
    func tunnelReceived(_ bytes: ByteBuffer)
    func tunnelReadComplete()
    func tunnelWritabilityChanged()
    func tunnelClosed(error: (any Error)?)
}

/// The upstream end of a CONNECT tunnel (`HTTPS_PROXY` pointed at the outbound listener): the
/// target's bytes go to the client as they come, and the client's bytes to the target, with
/// backpressure both ways. Nothing in them is read: usually it is TLS. Envoy's TCP proxy does the
/// same for the egress traffic it cannot see into.
final class TunnelHandler: ChannelInboundHandler, ChannelOutboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Connects to a tunnel's target from the client's event loop.
    static func connect(on loop: any EventLoop, to target: UpstreamTarget, timeout: TimeAmount) -> EventLoopFuture<(any Channel, TunnelHandler)> {
        ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(TunnelHandler())
                }
            }
            .bindingSource(of: target)
            .connect(host: target.host, port: target.port)
            .assumeIsolated()
            .flatMapThrowing { channel in
                try SelfConnection.refuse(channel)
                return (channel, try channel.pipeline.syncOperations.handler(type: TunnelHandler.self))
            }
            .nonisolated()
    }

    weak var delegate: (any TunnelDelegate)?
    private var context: ChannelHandlerContext?
    private var heldRead = HeldRead()
    private var closedReported = false

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        delegate?.tunnelReceived(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.tunnelReadComplete()
        context.fireChannelReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        delegate?.tunnelWritabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        reportClosed(error: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        reportClosed(error: error)
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        heldRead.read(context, hold: delegate.map { !$0.downstreamWritable } ?? false)
    }

    func resumeReads() {
        heldRead.resume(context)
    }

    /// Client bytes toward the target (flushed by `flush`).
    func write(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    /// The client went away: the target's side closes too.
    func close() {
        delegate = nil
        context?.close(promise: nil)
    }

    private func reportClosed(error: (any Error)?) {
        guard !closedReported else { return }
        closedReported = true
        let delegate = self.delegate
        self.delegate = nil
        delegate?.tunnelClosed(error: error)
    }
}
