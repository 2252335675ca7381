import NIOCore

/// The first handler of a captured connection: holds its first bytes until `ProtocolSniff`
/// decides what they are (or the client stays silent past the detection timeout), lets
/// `install` add the handlers for that protocol behind it, passes the held bytes on to them and
/// removes itself.
final class CaptureSniffHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private var sniff = ProtocolSniff()
    private var held: ByteBuffer?
    private var timer: Scheduled<Void>?
    private let timeout: TimeAmount
    private let install: (ProtocolSniff.Verdict, ChannelPipeline.SynchronousOperations) throws -> Void
    private var handedOver = false

    init(timeout: TimeAmount, install: @escaping (ProtocolSniff.Verdict, ChannelPipeline.SynchronousOperations) throws -> Void) {
        self.timeout = timeout
        self.install = install
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startTimer(context)
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if held == nil {
            held = bytes
        } else {
            var copy = bytes
            held?.writeBuffer(&copy)
        }
        let verdict = sniff.inspect(bytes)
        if verdict != .undecided { handOver(context, verdict) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        // Nothing is passed on until the protocol is known.
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    private func startTimer(_ context: ChannelHandlerContext) {
        guard timer == nil, !handedOver else { return }
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            self.timer = nil
            guard !self.handedOver, context.channel.isActive else { return }
            self.handOver(context, self.sniff.silence())
        }
    }

    private func handOver(_ context: ChannelHandlerContext, _ verdict: ProtocolSniff.Verdict) {
        guard !handedOver else { return }
        handedOver = true
        timer?.cancel()
        timer = nil
        do {
            try install(verdict, context.pipeline.syncOperations)
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        if let held {
            self.held = nil
            context.fireChannelRead(wrapInboundOut(held))
            context.fireChannelReadComplete()
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}
