import Logging
import NIOCore

/// Everything a listener's connections share. One per listener; immutable apart from the boxes.
public final class ListenerRuntime: Sendable {
    public let direction: ProxyDirection
    public let configuration: ConfigurationBox
    public let telemetry: any ProxyTelemetry
    public let pools: PoolRegistry
    public let clusters: ClusterRegistry
    /// Services with several endpoints: their balancer and outlier state, shared by listeners.
    public let endpointSets: EndpointSetRegistry
    public let stats: ProxyStats
    public let connections: ConnectionTracker
    /// Shared by every listener of one service instance (see `ParentInference`).
    public let inference: ParentInference
    public let logger: Logger
    /// The clock and timers of request deadlines: the event loop's, or a test's.
    public let timers: any RequestTimers

    public init(
        direction: ProxyDirection, configuration: ConfigurationBox, telemetry: any ProxyTelemetry,
        pools: PoolRegistry = PoolRegistry(), clusters: ClusterRegistry = ClusterRegistry(),
        endpointSets: EndpointSetRegistry = EndpointSetRegistry(), stats: ProxyStats = ProxyStats(),
        connections: ConnectionTracker? = nil, inference: ParentInference = ParentInference(),
        logger: Logger = Logger(label: "meshtrace.sidecar"), timers: any RequestTimers = EventLoopTimers()
    ) {
        self.direction = direction
        self.configuration = configuration
        self.telemetry = telemetry
        self.pools = pools
        self.clusters = clusters
        self.endpointSets = endpointSets
        self.stats = stats
        self.connections = connections ?? ConnectionTracker(limit: configuration.config.maxDownstreamConnections)
        self.inference = inference
        self.logger = logger
        self.timers = timers
    }
}
