import NIOCore

/// What the proxy tells the timeout handler about the request in progress (a direct call: the
/// proxy holds the handler, so the request path pays no event dispatch or dynamic cast).
enum ExchangePhase: Sendable {
    /// A complete request head arrived: the header timer stops.
    case headReceived
    /// The downstream request (body included) is complete: the proxy waits on the upstream now.
    case requestComplete
    /// The response finished and nothing is queued: the connection is idle again.
    case idle
}

/// Fired inbound when a client stalls in the middle of a request body.
enum DownstreamTimeout: Sendable {
    case bodyStalled
}

/// Timeouts for slow or stalled clients, on raw bytes before the HTTP decoder:
/// - header timeout: from the first byte of a request until its head is complete (slowloris);
///   on expiry answers 408 and closes;
/// - idle timeout: a connection with no request in progress and no bytes is closed quietly;
/// - body idle: while a request body is being received, the idle timeout restarts on every read;
///   on expiry the proxy is told (`DownstreamTimeout.bodyStalled`) and decides.
final class ConnectionTimeoutHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case idle
        case receivingHead
        case receivingBody
        case awaitingResponse
    }

    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var state = State.idle
    private var deadline = LazyDeadline()
    private var context: ChannelHandlerContext?

    init(headerTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { arm(idleTimeout) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline.cancel()
        self.context = nil
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(idleTimeout)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .idle:
            state = .receivingHead
            arm(headerTimeout)
        case .receivingBody:
            arm(idleTimeout)
        case .receivingHead, .awaitingResponse:
            break
        }
        context.fireChannelRead(data)
    }

    /// The proxy reports progress of the request in flight.
    func phase(_ phase: ExchangePhase) {
        switch phase {
        case .headReceived:
            state = .receivingBody
            arm(idleTimeout)
        case .requestComplete:
            state = .awaitingResponse
            deadline.clear()
        case .idle:
            state = .idle
            arm(idleTimeout)
        }
    }

    private func arm(_ amount: TimeAmount) {
        guard let context else { return }
        deadline.set(context.eventLoop.now + amount, loop: context.eventLoop) { [self] in self.timerFired() }
    }

    private func timerFired() {
        guard let context else { return }
        guard deadline.timerFired(loop: context.eventLoop, fire: { [self] in self.timerFired() }) else { return }
        switch state {
        case .idle:
            context.close(promise: nil)
        case .receivingHead:
            // No request is in progress, so the answer can be written as raw bytes here.
            let response = "HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            let done = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: response)), promise: done)
            done.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        case .receivingBody:
            context.fireUserInboundEventTriggered(DownstreamTimeout.bodyStalled)
        case .awaitingResponse:
            break
        }
    }
}
