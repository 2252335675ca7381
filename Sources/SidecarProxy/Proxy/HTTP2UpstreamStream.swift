import NIOCore
import NIOHPACK
import NIOHTTP2

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

    /// The relay is let go first: the reset closes the stream inside the write, and that close
    /// is the relay's doing, not the app's (a retry resets its dropped attempt this way).
    func reset(_ code: HTTP2ErrorCode) {
        relay = nil
        context?.writeAndFlush(wrapOutboundOut(.rstStream(code)), promise: nil)
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
