import Synchronization
import TraceModel

/// The live configuration, shared by every event loop. Readers take a snapshot per request (one
/// lock + a retain); a writer swaps the whole value, so a request never sees half an update.
/// The snapshot is a class so that taking one, and reading a field of it, copies no strings or
/// arrays (a struct copy of the whole configuration cost dozens of retains per request).
/// A later issue changes sampling live through this.
public final class ConfigurationBox: Sendable {
    private let storage: Mutex<Snapshot>

    /// The configuration plus what is derived from it once, so the request path does not redo it.
    public final class Snapshot: Sendable {
        public let config: SidecarConfiguration
        public let sampler: Sampler
        /// Upstreams by lower-case name.
        public let upstreamsByName: [String: UpstreamService]
        /// Upstreams by `host:port` and by host alone, for naming what a captured connection
        /// reached (or came from) by its address.
        public let upstreamsByAddress: [String: UpstreamService]
        public let healthCheckPaths: Set<String>
        /// The inbound cluster name, `inbound|PORT||` (built once, not per request).
        public let inboundCluster: String
        /// The configured propagation formats as recorded on inbound spans, e.g. "w3c,b3multi".
        public let propagationInjected: String
        /// Retries for requests started under this configuration.
        let retryPolicy: RetryPolicy
        /// With `sw8` among the formats: the SkyWalking service and instance names this sidecar
        /// writes into `sw8`, Base64-encoded once (nil: `sw8` passes through untouched).
        public let sw8Service: (name: String, instance: String)?
        /// Bumped on every swap, so caches keyed on it can notice.
        public let generation: Int

        init(config: SidecarConfiguration, generation: Int) {
            self.config = config
            self.sampler = Sampler(percent: config.samplingPercent)
            var byName: [String: UpstreamService] = [:]
            for u in config.upstreams { byName[u.name] = u }
            self.upstreamsByName = byName
            var byAddress: [String: UpstreamService] = [:]
            for u in config.upstreams.reversed() {
                for e in u.endpoints.reversed() {
                    byAddress[e.host] = u
                    byAddress["\(e.host):\(e.port)"] = u
                }
            }
            self.upstreamsByAddress = byAddress
            self.healthCheckPaths = Set(config.healthCheckPaths)
            self.inboundCluster = "inbound|\(config.appPort ?? 0)||"
            self.propagationInjected = config.propagation.map(\.rawValue).joined(separator: ",")
            self.retryPolicy = RetryPolicy(config)
            // The instance says which process wrote the header: this service's sidecar.
            self.sw8Service = config.propagation.contains(.sw8)
                ? (Base64.encode(config.serviceName), Base64.encode(config.serviceName + "-sidecar")) : nil
            self.generation = generation
        }
    }

    public init(_ config: SidecarConfiguration) {
        storage = Mutex(Snapshot(config: config, generation: 0))
    }

    public var snapshot: Snapshot { storage.withLock { $0 } }
    public var config: SidecarConfiguration { snapshot.config }

    /// Replaces the configuration (listener ports are not re-bound; everything else applies to new requests).
    public func update(_ change: (inout SidecarConfiguration) -> Void) {
        storage.withLock { current in
            var next = current.config
            change(&next)
            current = Snapshot(config: next, generation: current.generation + 1)
        }
    }
}
