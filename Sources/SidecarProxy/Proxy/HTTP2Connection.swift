import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import TraceModel

/// One downstream HTTP/2 prior-knowledge connection (gRPC over h2c), read stream by stream.
/// Its streams go out over one HTTP/2 connection to the route's target, opened along with it, so
/// every call gets its own span, trace headers and Istio metrics, as Envoy gives gRPC calls.
/// Everything here runs on the downstream channel's event loop: the upstream connection is
/// opened on it, and both connections' stream channels live on it.
final class HTTP2Connection {
    let runtime: ListenerRuntime
    /// The configuration the connection started under: its destination and timeouts. Each call
    /// reads the configuration in force when it starts.
    let snapshot: ConfigurationBox.Snapshot
    let route: Route
    /// Where the upstream connection goes: for a service with several endpoints, the endpoint
    /// the balancer picked for the current connection (`HTTP2Connection+Balancing.swift`).
    var target: UpstreamTarget
    let downstreamAddress: String?
    /// The upstream's circuit breaker and retry budget, shared with HTTP/1 requests to it.
    var cluster: ClusterState
    /// A service with several endpoints: its shared state, the current connection's endpoint,
    /// and the endpoints tried for the calls now waiting.
    var endpointSet: EndpointSet?
    var endpointIndex: Int?
    var triedEndpoints: [Int] = []
    var random = FastRandom()
    private(set) weak var downstream: (any Channel)?
    var upstream = Upstream.idle
    /// Connections to other endpoints, opened for retried calls that must avoid the endpoints
    /// they tried (`HTTP2Connection+Retry.swift`); closed with the downstream connection.
    var sideUpstreams: [Int: Upstream] = [:]
    /// Connect attempts retried for the calls now waiting (reset once a connection is up).
    private var connectRetries = 0
    private var retryTask: Scheduled<Void>?
    private var activeStreams = 0
    private var draining = false
    private(set) var closed = false
    private var idleTimer: Scheduled<Void>?

    enum Upstream {
        /// Not connected: the next stream connects.
        case idle
        case connecting([HTTP2StreamRelay])
        case ready(any Channel, NIOHTTP2Handler.StreamMultiplexer, address: String?)
    }

    init(runtime: ListenerRuntime, snapshot: ConfigurationBox.Snapshot, route: Route, target: UpstreamTarget,
         downstream: any Channel, downstreamAddress: String?) {
        self.runtime = runtime
        self.snapshot = snapshot
        self.route = route
        self.target = target
        self.downstream = downstream
        self.downstreamAddress = downstreamAddress
        cluster = runtime.clusters.cluster(for: target)
        endpointSet = route.service.flatMap { runtime.endpointSets.set(for: $0, config: snapshot.config) }
    }

    /// The stream handler for each stream the client opens.
    func streamInitializer(loop: any EventLoop) -> NIOChannelInitializer {
        let connection = NIOLoopBound(self, eventLoop: loop)
        return { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.pipeline.syncOperations.addHandler(HTTP2StreamRelay(connection: connection.value))
            }
        }
    }

    // MARK: Streams

    /// A connection that never opens a stream closes after the idle timeout too.
    func started() {
        armIdleTimer()
    }

    func streamStarted() {
        activeStreams += 1
        idleTimer?.cancel()
        idleTimer = nil
    }

    func streamFinished() {
        activeStreams -= 1
        guard activeStreams == 0 else { return }
        if draining, let downstream {
            // After the turn that recorded the last stream, whose final frames flush in it.
            downstream.eventLoop.assumeIsolated().execute { downstream.close(promise: nil) }
        } else {
            armIdleTimer()
        }
    }

    /// A stream wants its upstream end: at once when connected, else once the connection is up.
    /// A call waiting for the connection is a pending request to the circuit breaker, as an
    /// HTTP/1 request waiting for a pooled connection is.
    func openStream(for relay: HTTP2StreamRelay) {
        if case .ready(_, let multiplexer, let address) = upstream {
            relay.attach(multiplexer, upstreamAddress: address, endpoint: endpointIndex)
            return
        }
        let config = relay.snapshot.config
        guard cluster.tryReservePending(max: config.maxPendingRequests) else {
            relay.upstreamUnavailable(status: 503, flags: ["UO"], reason: "upstream overflow: \(config.maxPendingRequests) requests already pending")
            return
        }
        switch upstream {
        case .connecting(var waiting):
            waiting.append(relay)
            upstream = .connecting(waiting)
        case .idle:
            upstream = .connecting([relay])
            connect()
        case .ready:
            break  // handled above
        }
    }

    private func connect() {
        guard let loop = downstream?.eventLoop else { return }
        if case .connecting(let waiting) = upstream { chooseEndpoint(waiting: waiting.count) }
        let config = snapshot.config
        guard cluster.tryReserveConnection(max: config.maxConnections) else {
            failWaiting(status: 503, flags: ["UO"], reason: "upstream overflow: \(config.maxConnections) connections to \(target.address) already open")
            return
        }
        dial(target, on: loop)
            .whenComplete { [self] result in self.connected(result) }
    }

    /// An HTTP/2 connection to `target`, its multiplexer ready for streams.
    func dial(_ target: UpstreamTarget, on loop: any EventLoop) -> EventLoopFuture<(any Channel, NIOHTTP2Handler.StreamMultiplexer)>.Isolated {
        ClientBootstrap(group: loop)
            .connectTimeout(.milliseconds(snapshot.config.connectTimeoutMillis))
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // The app does not open streams toward the proxy (no server push).
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { pushed in pushed.close() }
                }
            }
            .bindingSource(of: target)
            .connect(host: target.host, port: target.port)
            .assumeIsolated()
            .flatMapThrowing { channel in
                try SelfConnection.refuse(channel)
                return (channel, try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer())
            }
    }

    private func connected(_ result: Result<(any Channel, NIOHTTP2Handler.StreamMultiplexer), any Error>) {
        if case .success(let (channel, _)) = result {
            let cluster = self.cluster
            channel.closeFuture.whenComplete { _ in cluster.releaseConnection() }
        } else {
            cluster.releaseConnection()
            recordOutcome(.localFailure)
            releaseEndpoint()
        }
        // The client may have gone while this connected: then nothing waits for the connection.
        guard case .connecting(let waiting) = upstream, !closed else {
            if case .success(let (channel, _)) = result { channel.close(promise: nil) }
            return
        }
        switch result {
        case .success(let (channel, multiplexer)):
            let address = channel.remoteAddress.map(UpstreamPool.describe)
            upstream = .ready(channel, multiplexer, address: address)
            connectRetries = 0
            triedEndpoints = []
            let endpoint = endpointIndex
            channel.closeFuture.assumeIsolated().whenComplete { [self] _ in
                self.releaseEndpoint(endpoint)
                if case .ready(let current, _, _) = self.upstream, current === channel { self.upstream = .idle }
            }
            for relay in waiting {
                cluster.releasePending()
                relay.attach(multiplexer, upstreamAddress: address, endpoint: endpoint)
            }
        case .failure(let error):
            let policy = snapshot.retryPolicy
            let timedOut: Bool
            if let channelError = error as? ChannelError, case .connectTimeout = channelError { timedOut = true } else { timedOut = false }
            // Retried within the per-request limit and the cluster's retry budget, with
            // Envoy's back-off, as an HTTP/1 request's connect failure is; the calls keep waiting.
            if policy.tryStart(after: connectRetries, in: cluster) {
                connectRetries += 1
                runtime.stats.update { $0.upstreamRetries += 1 }
                for relay in waiting { relay.retried() }
                let delay = RetryPolicy.backoff(retry: connectRetries, random: &random)
                retryTask = downstream?.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
                    self.retryTask = nil
                    self.cluster.retryFinished()
                    guard case .connecting(let still) = self.upstream, !still.isEmpty, !self.closed else { return }
                    self.connect()
                }
                return
            }
            var flags = [timedOut ? "UT" : "UF"]
            if let exhausted = policy.exhaustedFlag { flags.append(exhausted) }
            let retried = RetryPolicy.afterRetries(connectRetries)
            failWaiting(status: timedOut ? 504 : 503, flags: flags,
                        reason: "upstream connect error: \(timedOut ? "timed out" : "\(error)") to \(target.address)\(retried)")
        }
    }

    /// Every call waiting for the connection gets a local reply; the next call starts afresh.
    private func failWaiting(status: Int, flags: [String], reason: String) {
        guard case .connecting(let waiting) = upstream else { return }
        upstream = .idle
        connectRetries = 0
        triedEndpoints = []
        for relay in waiting {
            cluster.releasePending()
            relay.upstreamUnavailable(status: status, flags: flags, reason: reason)
        }
    }

    /// A call gave up (reset, timed out) while waiting for the connection.
    func abandon(_ relay: HTTP2StreamRelay) {
        guard case .connecting(var waiting) = upstream, let index = waiting.firstIndex(where: { $0 === relay }) else { return }
        waiting.remove(at: index)
        cluster.releasePending()
        upstream = .connecting(waiting)
    }

    // MARK: Connection lifecycle

    /// Shutdown: no new streams (GOAWAY), and the connection closes once its streams are done.
    func drain() {
        guard !draining, let downstream else { return }
        draining = true
        let goAway = HTTP2Frame(streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
        downstream.pipeline.syncOperations.writeAndFlush(NIOAny(goAway), promise: nil)
        if activeStreams == 0 { downstream.close(promise: nil) }
    }

    func downstreamClosed() {
        closed = true
        idleTimer?.cancel()
        idleTimer = nil
        if let retryTask {
            retryTask.cancel()
            self.retryTask = nil
            cluster.retryFinished()
        }
        if case .connecting(let waiting) = upstream {
            for _ in waiting { cluster.releasePending() }
        }
        if case .ready(let channel, _, _) = upstream { channel.close(promise: nil) }
        upstream = .idle
        closeSideUpstreams()
    }

    private func armIdleTimer() {
        guard let downstream, idleTimer == nil else { return }
        idleTimer = downstream.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(snapshot.config.idleTimeoutMillis)) { [self] in
            self.idleTimer = nil
            if self.activeStreams == 0 { self.downstream?.close(promise: nil) }
        }
    }
}
