import Logging
import NIOCore

/// Counters for `/stats` and for drain (requests in flight).
public final class ProxyStats: Sendable {
    public struct Values: Sendable, Equatable {
        public var requestsTotal = 0
        public var requestsActive = 0
        public var localReplies = 0
        public var rejectedRequests = 0
        public var downstreamConnectionsTotal = 0
        public var downstreamConnectionsRefused = 0
        /// Captured connections closed unserved: no original destination, or one of our own ports.
        public var capturedRefused = 0
        public var upstreamRetries = 0
        public var responseFlags: [String: Int] = [:]
    }

    private let values = Locked(Values())

    public init() {}

    public var snapshot: Values { values.withLock { $0 } }

    func update(_ change: (inout Values) -> Void) { values.withLock(change) }

    /// A request (HTTP/1 exchange or HTTP/2 stream) began: drain waits for it.
    func requestStarted() {
        values.withLock {
            $0.requestsTotal += 1
            $0.requestsActive += 1
        }
    }

    /// A request that `requestStarted` counted has been recorded, with these response flags.
    func requestFinished(flags: [String]) {
        values.withLock { stats in
            stats.requestsActive -= 1
            for flag in flags { stats.responseFlags[flag, default: 0] += 1 }
        }
    }
}

/// Everything a listener's connections share. One per listener; immutable apart from the boxes.
public final class ListenerRuntime: Sendable {
    public let direction: ProxyDirection
    public let configuration: ConfigurationBox
    public let telemetry: any ProxyTelemetry
    public let pools: PoolRegistry
    public let clusters: ClusterRegistry
    public let stats: ProxyStats
    public let connections: ConnectionTracker
    /// Shared by every listener of one service instance (see `ParentInference`).
    public let inference: ParentInference
    public let logger: Logger
    /// The clock and timers of request deadlines: the event loop's, or a test's.
    public let timers: any RequestTimers

    public init(
        direction: ProxyDirection, configuration: ConfigurationBox, telemetry: any ProxyTelemetry,
        pools: PoolRegistry = PoolRegistry(), clusters: ClusterRegistry = ClusterRegistry(), stats: ProxyStats = ProxyStats(),
        connections: ConnectionTracker? = nil, inference: ParentInference = ParentInference(),
        logger: Logger = Logger(label: "meshtrace.sidecar"), timers: any RequestTimers = EventLoopTimers()
    ) {
        self.direction = direction
        self.configuration = configuration
        self.telemetry = telemetry
        self.pools = pools
        self.clusters = clusters
        self.stats = stats
        self.connections = connections ?? ConnectionTracker(limit: configuration.config.maxDownstreamConnections)
        self.inference = inference
        self.logger = logger
        self.timers = timers
    }
}
