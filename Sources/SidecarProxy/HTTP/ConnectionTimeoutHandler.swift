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

/// A deadline checked by one lazily re-armed timer: moving the deadline is a store, and the
/// event loop's timer is only touched when the deadline moves earlier or the timer fires early.
/// Keeps keep-alive traffic from scheduling and cancelling timers (a timerfd syscall) per request.
struct LazyDeadline {
    private let timers: any RequestTimers
    private(set) var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?

    init(timers: any RequestTimers = EventLoopTimers()) {
        self.timers = timers
    }

    /// Sets the deadline; `fire` runs on the loop once it has really passed.
    mutating func set(_ deadline: NIODeadline, loop: any EventLoop, fire: @escaping () -> Void) {
        self.deadline = deadline
        if let timerAt, timerAt <= deadline { return }
        timer?.cancel()
        schedule(at: deadline, loop: loop, fire: fire)
    }

    mutating func clear() {
        deadline = nil
    }

    mutating func cancel() {
        deadline = nil
        timer?.cancel()
        timer = nil
        timerAt = nil
    }

    private mutating func schedule(at when: NIODeadline, loop: any EventLoop, fire: @escaping () -> Void) {
        timerAt = when
        timer = timers.schedule(at: when, on: loop) { fire() }
    }

    /// Called when the timer fires: true when the deadline has passed (act now); otherwise the
    /// timer is re-armed for the moved deadline.
    mutating func timerFired(loop: any EventLoop, fire: @escaping () -> Void) -> Bool {
        timer = nil
        timerAt = nil
        guard let deadline else { return false }
        if deadline <= timers.now(on: loop) {
            self.deadline = nil
            return true
        }
        schedule(at: deadline, loop: loop, fire: fire)
        return false
    }
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
        // Queued under the lock: whoever sees `isDraining` knows every connection's event is on
        // its loop's queue (a test orders its next step after them with one task per loop).
        state.withLock { s in
            s.draining = true
            for channel in s.channels.values {
                channel.eventLoop.execute { channel.pipeline.syncOperations.fireUserInboundEventTriggered(DrainEvent()) }
            }
        }
    }

    /// Whether `drainAll` has run.
    var isDraining: Bool { state.withLock { $0.draining } }

    func closeAll() {
        let channels = state.withLock { Array($0.channels.values) }
        for channel in channels { channel.close(promise: nil) }
    }
}

/// Sent to each downstream connection on shutdown.
struct DrainEvent: Sendable {}
