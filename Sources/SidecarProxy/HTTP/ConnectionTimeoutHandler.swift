import NIOCore

/// What the proxy tells the timeout handler about the request in progress. Sent as outbound user
/// events, so the two handlers know nothing about each other.
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
final class ConnectionTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
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
    private var timer: Scheduled<Void>?
    /// Reads seen since the timer was armed (avoids re-arming a timer on every read).
    private var activitySinceArmed = false

    init(headerTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context: context, idleTimeout)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context: context, idleTimeout) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch state {
        case .idle:
            state = .receivingHead
            arm(context: context, headerTimeout)
        case .receivingBody:
            activitySinceArmed = true
        case .receivingHead, .awaitingResponse:
            break
        }
        context.fireChannelRead(data)
    }

    func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let phase = event as? ExchangePhase else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch phase {
        case .headReceived:
            state = .receivingBody
            arm(context: context, idleTimeout)
        case .requestComplete:
            state = .awaitingResponse
            timer?.cancel()
            timer = nil
        case .idle:
            state = .idle
            arm(context: context, idleTimeout)
        }
        promise?.succeed(())
    }

    private func arm(context: ChannelHandlerContext, _ amount: TimeAmount) {
        timer?.cancel()
        activitySinceArmed = false
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: amount) { [self] in
            self.fired(context: context)
        }
    }

    private func fired(context: ChannelHandlerContext) {
        timer = nil
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
            if activitySinceArmed {
                arm(context: context, idleTimeout)
            } else {
                context.fireUserInboundEventTriggered(DownstreamTimeout.bodyStalled)
            }
        case .awaitingResponse:
            break
        }
    }
}

/// Counts downstream connections of every listener against one cap, and remembers them so
/// shutdown can ask each to drain.
public final class ConnectionTracker: Sendable {
    private let state: Locked<State>

    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

    public let limit: Int

    public init(limit: Int) {
        self.limit = limit
        self.state = Locked(State())
    }

    public var count: Int { state.withLock { $0.channels.count } }

    /// Registers a new connection; false when over the cap or draining (the caller closes it).
    func admit(_ channel: any Channel) -> Bool {
        let admitted = state.withLock { s -> Bool in
            guard !s.draining, s.channels.count < limit else { return false }
            s.channels[ObjectIdentifier(channel)] = channel
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { [state] _ in
                _ = state.withLock { $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
            }
        }
        return admitted
    }

    /// Tells every connection to finish its request in progress and then close.
    func drainAll() {
        let channels = state.withLock { s -> [any Channel] in
            s.draining = true
            return Array(s.channels.values)
        }
        for channel in channels {
            channel.eventLoop.execute { channel.pipeline.syncOperations.fireUserInboundEventTriggered(DrainEvent()) }
        }
    }

    func closeAll() {
        let channels = state.withLock { Array($0.channels.values) }
        for channel in channels { channel.close(promise: nil) }
    }
}

/// Sent to each downstream connection on shutdown.
struct DrainEvent: Sendable {}
