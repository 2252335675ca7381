import Dispatch
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// `meshtrace sidecar`: the listeners (inbound, outbound, gateway), the metrics port and the
/// admin port, on one event-loop group with one thread per core.
public final class SidecarServer: Sendable {
    public let configuration: ConfigurationBox
    public let telemetry: any ProxyTelemetry
    public let stats = ProxyStats()
    public let pools = PoolRegistry()
    public let clusters = ClusterRegistry()
    /// Balancer and outlier state of multi-endpoint upstreams; pass one in to share it with the
    /// same instance's other listeners (the mesh runner's egress listeners), as one Envoy would.
    public let endpointSets: EndpointSetRegistry
    public let connections: ConnectionTracker
    /// Capture mode: refuses captured connections to this sidecar's own ports.
    let captureGuard = CaptureGuard()
    let binder: any ListenerBinder
    /// In-flight inbound requests for parent inference; pass one in to share it with other
    /// listeners of the same service instance (the mesh runner's egress listeners).
    public let inference: ParentInference
    /// Request deadlines' clock: the event loops' unless a test drives it.
    public let timers: any RequestTimers
    let logger: Logger
    let group: any EventLoopGroup
    private let ownsGroup: Bool
    private let state = Mutex(State())

    private struct State {
        var dataChannels: [any Channel] = []
        var controlChannels: [any Channel] = []
        var addresses = BoundAddresses()
        var draining = false
        var stopped = false
    }

    public convenience init(configuration: SidecarConfiguration, telemetry: any ProxyTelemetry, logger: Logger, group: (any EventLoopGroup)? = nil,
                            inference: ParentInference? = nil, timers: any RequestTimers = EventLoopTimers()) {
        self.init(configuration: ConfigurationBox(configuration), telemetry: telemetry, logger: logger, group: group, inference: inference, timers: timers)
    }

    /// - Parameter configuration: the live configuration; swap it to change sampling and more at runtime.
    /// - Parameter binder: where data-plane listeners' sockets are made (a network namespace).
    public init(configuration: ConfigurationBox, telemetry: any ProxyTelemetry, logger: Logger, group: (any EventLoopGroup)? = nil,
                inference: ParentInference? = nil, timers: any RequestTimers = EventLoopTimers(),
                binder: any ListenerBinder = CurrentNamespaceBinder(), endpointSets: EndpointSetRegistry? = nil) {
        self.binder = binder
        self.endpointSets = endpointSets ?? EndpointSetRegistry()
        self.configuration = configuration
        self.timers = timers
        self.inference = inference ?? ParentInference()
        self.telemetry = telemetry
        self.logger = logger
        self.connections = ConnectionTracker(limit: configuration.config.maxDownstreamConnections)
        if let group {
            self.group = group
            self.ownsGroup = false
        } else {
            self.group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
            self.ownsGroup = true
        }
    }

    public var addresses: BoundAddresses { state.withLock { $0.addresses } }
    public var isDraining: Bool { state.withLock { $0.draining } }

    /// Binds every enabled listener and returns the actual addresses.
    @discardableResult
    public func start() async throws -> BoundAddresses {
        let config = configuration.config
        var addresses = BoundAddresses()
        do {
            if config.inboundEnabled {
                let ch = try await bindProxy(direction: .inbound, host: config.bindHost, port: config.inboundPort)
                addresses.inbound = Self.describe(ch)
                state.withLock { $0.dataChannels.append(ch) }
            }
            if config.outboundEnabled {
                let ch = try await bindProxy(direction: .outbound, host: config.bindHost, port: config.outboundPort)
                addresses.outbound = Self.describe(ch)
                state.withLock { $0.dataChannels.append(ch) }
            }
            if config.gatewayEnabled, let port = config.gatewayPort {
                let ch = try await bindProxy(direction: .gateway, host: config.bindHost, port: port)
                addresses.gateway = Self.describe(ch)
                state.withLock { $0.dataChannels.append(ch) }
            }
            if config.metricsPort >= 0 {
                let ch = try await bindSimple(host: config.bindHost, port: config.metricsPort) { [weak self] head in
                    self?.metricsResponse(head) ?? .text("gone\n", status: .serviceUnavailable)
                }
                addresses.metrics = Self.describe(ch)
                state.withLock { $0.controlChannels.append(ch) }
            }
            if config.adminPort >= 0 {
                // Admin is loopback only, whatever --host says.
                let ch = try await bindSimple(host: "127.0.0.1", port: config.adminPort) { [weak self] head in
                    self?.adminResponse(head) ?? .text("gone\n", status: .serviceUnavailable)
                }
                addresses.admin = Self.describe(ch)
                state.withLock { $0.controlChannels.append(ch) }
            }
            if config.capture.enabled {
                let capture = try await bindCaptureListeners(config, guard: captureGuard)
                addresses.inboundCapture = Self.describe(capture.inbound)
                addresses.outboundCapture = Self.describe(capture.outbound)
                state.withLock { $0.dataChannels += [capture.inbound, capture.outbound] }
                if let health = capture.health {
                    addresses.health = Self.describe(health)
                    state.withLock { $0.controlChannels.append(health) }
                }
            } else if let port = config.capture.effectiveHealthPort {
                let ch = try await bindSimple(host: config.bindHost, port: port) { [weak self] head in
                    self?.healthResponse(head) ?? .text("gone\n", status: .serviceUnavailable)
                }
                addresses.health = Self.describe(ch)
                state.withLock { $0.controlChannels.append(ch) }
            }
        } catch {
            await closeListeners()
            throw error
        }
        let bound = addresses
        state.withLock { $0.addresses = bound }
        let ports = state.withLock { s in Set((s.dataChannels + s.controlChannels).compactMap { $0.localAddress?.port }) }
        captureGuard.setOwnPorts(ports)
        return bound
    }

    /// Starts, logs the listening line, waits for SIGTERM or SIGINT, then drains and stops.
    public func run() async throws {
        let signals = SignalWaiter(signals: [SIGTERM, SIGINT])
        let addresses = try await start()
        logger.info("\(addresses.listeningLine(service: configuration.config.serviceName))")
        let signal = await signals.wait()
        logger.info("received signal \(signal); draining in-flight requests")
        await shutdown()
        logger.info("meshtrace sidecar stopped")
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), closes every
    /// connection, flushes telemetry and releases the event loops.
    public func shutdown() async {
        let already = state.withLock { s -> Bool in
            defer { s.draining = true; s.stopped = true }
            return s.stopped
        }
        guard !already else { return }
        let dataChannels = state.withLock { $0.dataChannels }
        for ch in dataChannels { try? await ch.close() }
        connections.drainAll()
        let deadline = NIODeadline.now() + .milliseconds(configuration.config.drainTimeoutMillis)
        // Drained connections close themselves once their last response is written; waiting for
        // that (not just for the request count) keeps the final bytes from being cut off.
        while (stats.snapshot.requestsActive > 0 || connections.count > 0) && NIODeadline.now() < deadline {
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        if stats.snapshot.requestsActive > 0 {
            logger.warning("drain timeout: closing \(stats.snapshot.requestsActive) unfinished requests")
        }
        connections.closeAll()
        pools.closeIdle()
        await telemetry.flush()
        let controlChannels = state.withLock { $0.controlChannels }
        for ch in controlChannels { try? await ch.close() }
        if ownsGroup {
            try? await group.shutdownGracefully()
        }
    }

    private func closeListeners() async {
        let all = state.withLock { $0.dataChannels + $0.controlChannels }
        for ch in all { try? await ch.close() }
    }

    // MARK: - Listeners

    func makeRuntime(_ direction: ProxyDirection) -> ListenerRuntime {
        ListenerRuntime(
            direction: direction, configuration: configuration, telemetry: telemetry, pools: pools, clusters: clusters, endpointSets: endpointSets,
            stats: stats, connections: connections, inference: inference, logger: logger, timers: timers)
    }

    private func bindProxy(direction: ProxyDirection, host: String, port: Int) async throws -> any Channel {
        let runtime = makeRuntime(direction)
        let config = configuration.config
        let bootstrap = dataPlaneBootstrap { channel in
            try Self.configureProxyPipeline(channel.pipeline.syncOperations, runtime: runtime, config: config)
        }
        let handover = BootstrapHandover(bootstrap: bootstrap)
        return try await binder.bind { handover.bind(host: host, port: port) }
    }

    /// A data-plane listener: the connection limit, then `configure` on each admitted connection
    /// (on its event loop; an error closes it).
    func dataPlaneBootstrap(_ configure: @escaping @Sendable (any Channel) throws -> Void) -> ServerBootstrap {
        let stats = self.stats
        let connections = self.connections
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 1024)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { channel in
                guard connections.admit(channel) else {
                    stats.update { $0.downstreamConnectionsRefused += 1 }
                    return channel.close()
                }
                stats.update { $0.downstreamConnectionsTotal += 1 }
                return channel.eventLoop.makeCompletedFuture { try configure(channel) }
            }
    }

    /// The data-plane pipeline: timeouts on raw bytes, then the proxy, which reads and writes
    /// HTTP/1.1 itself (parsing, validation with its 400/431 answers, response framing).
    static func configureProxyPipeline(
        _ sync: ChannelPipeline.SynchronousOperations, runtime: ListenerRuntime, config: SidecarConfiguration, captured: CapturedDestination? = nil
    ) throws {
        let timeouts = ConnectionTimeoutHandler(
            headerTimeout: .milliseconds(config.headerTimeoutMillis), idleTimeout: .milliseconds(config.idleTimeoutMillis))
        try sync.addHandler(timeouts)
        try sync.addHandler(ProxyHandler(runtime: runtime, timeouts: timeouts, maxHeaderBytes: config.maxHeaderBytes, captured: captured))
    }

    func bindSimple(host: String, port: Int, respond: @escaping @Sendable (HTTPRequestHead) -> SimpleResponse) async throws -> any Channel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(SimpleHTTPHandler(respond: respond))
                }
            }
            .bind(host: host, port: port).get()
    }

    // MARK: - Admin and metrics

    func metricsResponse(_ head: HTTPRequestHead) -> SimpleResponse {
        let path = TraceDecision.pathOnly(head.uri)
        switch path {
        case "/stats/prometheus", "/metrics":
            return SimpleResponse(
                status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8",
                body: telemetry.prometheusText() + inference.prometheusText(service: configuration.config.serviceName)
                    + endpointSets.prometheusText())
        default:
            return .text("not found; metrics are at /stats/prometheus\n", status: .notFound)
        }
    }

    func adminResponse(_ head: HTTPRequestHead) -> SimpleResponse {
        let path = TraceDecision.pathOnly(head.uri)
        switch path {
        case "/config_dump":
            return .json(ConfigDump.render(configuration.config, addresses: addresses, inference: inference))
        case "/ready":
            return isDraining ? .text("DRAINING\n", status: .serviceUnavailable) : .text("LIVE\n")
        case "/stats":
            return .text(statsText())
        case "/stats/prometheus":
            return metricsResponse(head)
        case "/":
            return .text("meshtrace sidecar admin: /config_dump /ready /stats /stats/prometheus\n")
        default:
            return .text("not found\n", status: .notFound)
        }
    }

    func statsText() -> String {
        let s = stats.snapshot
        var lines = [
            "downstream_rq_total: \(s.requestsTotal)",
            "downstream_rq_active: \(s.requestsActive)",
            "downstream_rq_rejected: \(s.rejectedRequests)",
            "downstream_cx_total: \(s.downstreamConnectionsTotal)",
            "downstream_cx_active: \(connections.count)",
            "downstream_cx_overflow: \(s.downstreamConnectionsRefused)",
            "capture_refused: \(s.capturedRefused)",
            "local_replies: \(s.localReplies)",
            "upstream_rq_retry: \(s.upstreamRetries)",
            "parent_inference.inferred: \(inference.counts.inferred)",
            "parent_inference.ambiguous: \(inference.counts.ambiguous)",
            "parent_inference.none: \(inference.counts.none)",
        ]
        for (flag, n) in s.responseFlags.sorted(by: { $0.key < $1.key }) {
            lines.append("response_flags.\(flag): \(n)")
        }
        for cluster in clusters.all.sorted(by: { $0.target.key < $1.target.key }) {
            let c = cluster.snapshot
            let name = "cluster.\(cluster.target.clusterName)"
            lines.append("\(name).upstream_cx_active: \(c.connections)")
            lines.append("\(name).upstream_rq_pending_active: \(c.pending)")
            lines.append("\(name).upstream_rq_active: \(c.activeRequests)")
            lines.append("\(name).upstream_rq_pending_overflow: \(c.overflows)")
            lines.append("\(name).upstream_rq_retry_overflow: \(c.retriesDenied)")
        }
        lines += endpointSets.statsLines()
        return lines.joined(separator: "\n") + "\n"
    }

    static func describe(_ channel: any Channel) -> String {
        channel.localAddress.map(UpstreamPool.describe) ?? "?"
    }
}

/// Waits for the first of some signals (installed before the listeners start, so an early
/// SIGTERM is not lost).
final class SignalWaiter: @unchecked Sendable {  // immutable after init; sources only retained
    private let sources: [any DispatchSourceSignal]
    private let stream: AsyncStream<Int32>

    init(signals: [Int32]) {
        var continuation: AsyncStream<Int32>.Continuation?
        stream = AsyncStream { continuation = $0 }
        let queue = DispatchQueue(label: "meshtrace.sidecar.signals")
        var sources: [any DispatchSourceSignal] = []
        for sig in signals {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            let c = continuation
            source.setEventHandler { c?.yield(sig) }
            source.resume()
            sources.append(source)
        }
        self.sources = sources
    }

    func wait() async -> Int32 {
        for await sig in stream { return sig }
        return SIGTERM
    }
}
