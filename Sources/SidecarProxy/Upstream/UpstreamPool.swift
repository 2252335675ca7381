import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// The side of a request that an upstream connection reports to while it is checked out.
protocol UpstreamDelegate: AnyObject {
    func upstreamReceived(_ part: UpstreamResponsePart, from connection: UpstreamConnection)
    func upstreamReadComplete()
    func upstreamClosed(_ connection: UpstreamConnection, error: Error?)
    func upstreamWritabilityChanged(_ connection: UpstreamConnection)
    /// Upstream reads pause while this is false (backpressure toward the upstream).
    var downstreamWritable: Bool { get }
}

/// One keep-alive HTTP/1.1 connection to an upstream, owned by the pool of one event loop.
// @unchecked: passed through futures, but only ever touched on its channel's event loop.
final class UpstreamConnection: @unchecked Sendable {
    let channel: any Channel
    let handler: UpstreamHandler
    let remoteAddress: String
    /// Requests sent on this connection so far (a reused connection may have gone stale).
    var uses = 0

    init(channel: any Channel, handler: UpstreamHandler, remoteAddress: String) {
        self.channel = channel
        self.handler = handler
        self.remoteAddress = remoteAddress
    }

    var isUsable: Bool { channel.isActive && !handler.sawUnexpectedData }
}

/// The whole pipeline of an upstream connection: writes requests as HTTP/1.1 bytes, reads
/// responses with `HTTPResponseParser` (hop-by-hop fields already left out, as a proxy forwards
/// none of them) and hands their parts straight to the current delegate
/// (no pipeline stages between the socket and the proxy), and pauses reads when the downstream
/// cannot take more (the GlueHandler pattern, across two channels on one loop).
final class UpstreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    weak var delegate: (any UpstreamDelegate)?
    weak var connection: UpstreamConnection?
    private var context: ChannelHandlerContext?
    private var heldRead = HeldRead()
    private var lastError: Error?
    private var parser = HTTPResponseParser()
    /// Methods of the requests sent and not yet answered (a HEAD response has no body). Kept
    /// here, not in the parser: the proxy sends the next request from inside a parse.
    private var methods = CircularBuffer<HTTPMethod>()
    private var writer = UpstreamRequestWriter()
    /// Data arrived while no request was in flight: the connection cannot be reused.
    var sawUnexpectedData = false
    /// Whether the response being read lets the connection carry another request.
    private(set) var responseKeepAlive = true
    private var parsing = false
    private var closedWhileParsing = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var input = unwrapInboundIn(data)
        var failure: HTTPWireError?
        parsing = true
        do {
            try parser.parseForwarding(&input, allocator: context.channel.allocator, requestMethod: { methods.popFirst() }) { part, keepAlive in
                if case .head = part { responseKeepAlive = keepAlive }
                deliver(part, context: context)
            }
        } catch {
            failure = error
        }
        parsing = false
        if closedWhileParsing {
            closedWhileParsing = false
            connectionClosed(context: context)
        } else if let failure {
            lastError = failure
            context.close(promise: nil)
        }
    }

    private func deliver(_ part: UpstreamResponsePart, context: ChannelHandlerContext) {
        if let delegate, let connection {
            delegate.upstreamReceived(part, from: connection)
        } else if !sawUnexpectedData {
            sawUnexpectedData = true
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        delegate?.upstreamReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // The proxy closes a connection it will not reuse as soon as a response ends, which can
        // be inside a parse of this connection's bytes: finish that parse first.
        if parsing {
            closedWhileParsing = true
        } else {
            connectionClosed(context: context)
        }
    }

    private func connectionClosed(context: ChannelHandlerContext) {
        // A body that runs until the connection closes ends here; anything else cut short is a
        // protocol error for whoever waits on it.
        do {
            if try parser.inputClosed() { deliver(.end(nil), context: context) }
        } catch {
            lastError = error
        }
        let delegate = self.delegate
        self.delegate = nil
        if let delegate, let connection { delegate.upstreamClosed(connection, error: lastError) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        lastError = error
        context.close(promise: nil)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let delegate, let connection { delegate.upstreamWritabilityChanged(connection) }
        context.fireChannelWritabilityChanged()
    }

    func read(context: ChannelHandlerContext) {
        heldRead.read(context, hold: delegate.map { !$0.downstreamWritable } ?? false)
    }

    func resumeReads() {
        heldRead.resume(context)
    }

    func write(_ part: UpstreamRequestPart) {
        guard let context else { return }
        if case .head(let head) = part { methods.append(head.method) }
        writer.write(part, allocator: context.channel.allocator, promise: nil) { bytes, promise in
            context.write(wrapOutboundOut(bytes), promise: promise)
        }
    }

    func flush() {
        context?.flush()
    }
}

enum PoolError: Error {
    /// The circuit breaker's pending queue is full.
    case overflow
    /// The request gave up waiting (timeout or the client left).
    case cancelled
}

/// Connections to one upstream from one event loop: idle keep-alive connections (reused LIFO),
/// and requests waiting for a slot when the cluster is at `maxConnections`. Everything here runs
/// on `eventLoop`; the cross-loop limits live in `ClusterState`.
final class UpstreamPool {
    struct Limits {
        var maxConnections: Int
        var maxPending: Int
        var maxIdle: Int
        var connectTimeout: TimeAmount
    }

    enum Acquired {
        case ready(UpstreamConnection)
        case waiting(EventLoopFuture<UpstreamConnection>, waiterID: Int?)
        case overflow
    }

    private struct Waiter {
        var id: Int
        var promise: EventLoopPromise<UpstreamConnection>
        var limits: Limits
    }

    let eventLoop: any EventLoop
    let target: UpstreamTarget
    let cluster: ClusterState
    private var idle: [UpstreamConnection] = []
    private var waiters = CircularBuffer<Waiter>()
    private var nextWaiterID = 0
    /// Resolved once per pool for IP literals; names are resolved per connect.
    private let resolved: SocketAddress?

    init(eventLoop: any EventLoop, target: UpstreamTarget, cluster: ClusterState) {
        self.eventLoop = eventLoop
        self.target = target
        self.cluster = cluster
        self.resolved = try? SocketAddress(ipAddress: target.host, port: target.port)
    }

    var idleCount: Int { idle.count }
    var waiterCount: Int { waiters.count }

    /// An idle connection, a new one, or a place in the queue. `fresh` skips idle connections
    /// (used after a reused connection turned out to be stale).
    func acquire(limits: Limits, fresh: Bool = false) -> Acquired {
        if !fresh {
            while let conn = idle.popLast() {
                if conn.isUsable { return .ready(conn) }
                conn.channel.close(promise: nil)
            }
        }
        if cluster.tryReserveConnection(max: limits.maxConnections) {
            return .waiting(connect(limits: limits), waiterID: nil)
        }
        guard cluster.tryReservePending(max: limits.maxPending) else { return .overflow }
        let promise = eventLoop.makePromise(of: UpstreamConnection.self)
        nextWaiterID += 1
        waiters.append(Waiter(id: nextWaiterID, promise: promise, limits: limits))
        // Idle connections on other loops may hold every slot: ask them to let one go.
        cluster.wakeAll()
        return .waiting(promise.futureResult, waiterID: nextWaiterID)
    }

    /// Gives up a place in the queue.
    func cancelWaiter(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        let waiter = waiters.remove(at: index)
        cluster.releasePending()
        waiter.promise.fail(PoolError.cancelled)
    }

    /// Returns a connection after a request. Reusable ones go to a waiter first, then to the idle list.
    func release(_ conn: UpstreamConnection, reusable: Bool, maxIdle: Int) {
        conn.handler.delegate = nil
        guard reusable, conn.isUsable else {
            conn.channel.close(promise: nil)
            return
        }
        if let waiter = waiters.popFirst() {
            cluster.releasePending()
            waiter.promise.succeed(conn)
            return
        }
        if idle.count < maxIdle && cluster.pendingCount == 0 {
            idle.append(conn)
        } else {
            conn.channel.close(promise: nil)
        }
    }

    /// Capacity changed somewhere, or a request on another loop is waiting: start connections
    /// for local waiters while slots last; with no local waiters, give up an idle connection
    /// so the other loop's waiter gets its slot (pools are per loop, limits per cluster).
    func capacityChanged() {
        while let first = waiters.first, cluster.tryReserveConnection(max: first.limits.maxConnections) {
            _ = waiters.popFirst()
            cluster.releasePending()
            connect(limits: first.limits).cascade(to: first.promise)
        }
        if waiters.isEmpty, !idle.isEmpty, cluster.pendingCount > 0, let conn = idle.popLast() {
            conn.channel.close(promise: nil)
        }
    }

    func closeIdle() {
        for conn in idle { conn.channel.close(promise: nil) }
        idle.removeAll()
    }

    /// Opens a connection; the caller has reserved its slot in the cluster.
    private func connect(limits: Limits) -> EventLoopFuture<UpstreamConnection> {
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(limits.connectTimeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(UpstreamHandler())
                }
            }
            .bindingSource(of: target)
        let connecting: EventLoopFuture<any Channel>
        if let resolved {
            connecting = bootstrap.connect(to: resolved)
        } else {
            connecting = bootstrap.connect(host: target.host, port: target.port)
        }
        let cluster = self.cluster
        let address = target.address
        return connecting.assumeIsolated().flatMapThrowing { channel -> UpstreamConnection in
            try SelfConnection.refuse(channel)
            channel.closeFuture.whenComplete { _ in cluster.releaseConnection() }
            let handler = try channel.pipeline.syncOperations.handler(type: UpstreamHandler.self)
            let remote = channel.remoteAddress.map(Self.describe) ?? address
            let conn = UpstreamConnection(channel: channel, handler: handler, remoteAddress: remote)
            handler.connection = conn
            return conn
        }.nonisolated().flatMapErrorThrowing { error in
            // The slot was reserved for a connection that never came up.
            cluster.releaseConnection()
            throw error
        }
    }

    static func describe(_ address: SocketAddress) -> String {
        switch address {
        case .v4: return "\(address.ipAddress ?? "?"):\(address.port ?? 0)"
        case .v6:
            // An IPv4 peer of a dual-stack listener (capture mode) is `::ffff:a.b.c.d`: shown as IPv4.
            let ip = address.ipAddress ?? "?"
            if let v4 = CapturedDestination.unmappedIPv4(ip) { return "\(v4):\(address.port ?? 0)" }
            return "[\(ip)]:\(address.port ?? 0)"
        default: return "\(address)"
        }
    }
}

/// The pools of one event loop, by target. Confined to that loop.
final class LoopPools {
    let eventLoop: any EventLoop
    /// By the target itself: hashing its three fields costs less than building a string key per request.
    private var pools: [UpstreamTarget: UpstreamPool] = [:]
    private var last: UpstreamPool?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func pool(for target: UpstreamTarget, clusters: ClusterRegistry) -> UpstreamPool {
        // Most listeners send everything to one target (an inbound one always): comparing with
        // the last one is cheaper than hashing the host name per request.
        if let last, last.target == target { return last }
        if let existing = pools[target] {
            last = existing
            return existing
        }
        let cluster = clusters.cluster(for: target)
        let pool = UpstreamPool(eventLoop: eventLoop, target: target, cluster: cluster)
        pools[target] = pool
        let bound = NIOLoopBound(pool, eventLoop: eventLoop)
        let loop = eventLoop
        cluster.addWaker {
            loop.execute { bound.value.capacityChanged() }
        }
        return pool
    }

    func closeAll() {
        for pool in pools.values { pool.closeIdle() }
    }
}

/// Finds the `LoopPools` of an event loop. Created lazily, one per loop.
public final class PoolRegistry: Sendable {
    private struct Entry: Sendable {
        var loop: any EventLoop
        var pools: NIOLoopBound<LoopPools>
    }

    private let byLoop = Mutex<[ObjectIdentifier: Entry]>([:])

    public init() {}

    func pools(for eventLoop: any EventLoop) -> LoopPools {
        let key = ObjectIdentifier(eventLoop)
        return byLoop.withLock { map in
            if let existing = map[key] { return existing.pools.value }
            let created = LoopPools(eventLoop: eventLoop)
            map[key] = Entry(loop: eventLoop, pools: NIOLoopBound(created, eventLoop: eventLoop))
            return created
        }
    }

    /// Closes idle upstream connections on every loop (shutdown).
    public func closeIdle() {
        let all = byLoop.withLock { Array($0.values) }
        for entry in all {
            entry.loop.execute { entry.pools.value.closeAll() }
        }
    }
}

/// A TCP connect to a local port nobody listens on can meet itself: when the kernel picks that
/// same port as the source (both in the ephemeral range), the handshake completes with no server
/// at all, and the proxy would talk to its own socket. Retrying a dead local app makes it likely
/// enough to have failed a CI run. Such a connection is closed and reported as the refusal it is.
enum SelfConnection {
    struct Refused: Error, CustomStringConvertible {
        var description: String { "connection refused (the connect met itself: nothing listens there)" }
    }

    static func refuse(_ channel: any Channel) throws {
        guard let local = channel.localAddress, let remote = channel.remoteAddress, local == remote else { return }
        channel.close(promise: nil)
        throw Refused()
    }
}
