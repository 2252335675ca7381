import Synchronization

/// The live state of one service's endpoints, shared by every event loop and both protocols:
/// the balancer, outlier detection and per-endpoint counters, behind one lock taken when an
/// attempt picks an endpoint and when it ends. Only services with more than one endpoint get
/// one: with one endpoint there is nothing to choose (and Envoy's panic rule would send the
/// request to it even when ejected).
public final class EndpointSet: Sendable {
    public let service: UpstreamService
    public let policy: LoadBalancerPolicy
    public let outlierSettings: OutlierDetector.Settings

    /// Per-endpoint counters, for the metrics endpoint and `meshtrace status`.
    public struct EndpointStats: Sendable, Equatable {
        public var endpoint: UpstreamEndpoint
        public var active = 0
        public var total = 0
        /// 5xx answers and local failures.
        public var errors = 0
        public var ejections = 0
        public var ejected = false
    }

    private struct State {
        var balancer: LoadBalancer
        var outliers: OutlierDetector
        var active: [Int]
        var total: [Int]
        var errors: [Int]
        var random = FastRandom()
    }

    private let state: Mutex<State>
    private let clock: @Sendable () -> UInt64

    /// - Parameter clock: monotonic nanoseconds (tests pass their own).
    public init(service: UpstreamService, policy: LoadBalancerPolicy, outliers: OutlierDetector.Settings,
                clock: (@Sendable () -> UInt64)? = nil) {
        self.service = service
        self.policy = policy
        self.outlierSettings = outliers
        self.clock = clock ?? { Clock.monoNanos() }
        let n = service.endpoints.count
        state = Mutex(State(
            balancer: LoadBalancer(policy: policy), outliers: OutlierDetector(hosts: n, settings: outliers),
            active: Array(repeating: 0, count: n), total: Array(repeating: 0, count: n), errors: Array(repeating: 0, count: n)))
    }

    /// Picks the endpoint for one attempt and counts it active until `release`.
    /// - Parameter tried: endpoints earlier attempts of this request used: avoided when another
    ///   one is available (Envoy's `previous_hosts` retry predicate).
    public func choose(avoiding tried: [Int] = []) -> Int {
        let now = clock()
        return state.withLock { s in
            let n = s.active.count
            let healthy = (0..<n).filter { !s.outliers.isEjected($0, now: now) }
            // Envoy's healthy panic threshold (50 %): with fewer healthy endpoints than that,
            // ejections are ignored rather than piling everything on the few left.
            var pool = healthy.count * 2 < n ? Array(0..<n) : healthy
            let fresh = pool.filter { !tried.contains($0) }
            if !fresh.isEmpty {
                pool = fresh
            } else if tried.count < n {
                // Every healthy endpoint was tried: an ejected, untried one beats a repeat.
                pool = (0..<n).filter { !tried.contains($0) }
            }
            let chosen = s.balancer.pick(from: pool, active: s.active, random: &s.random) ?? 0
            s.active[chosen] += 1
            s.total[chosen] += 1
            return chosen
        }
    }

    /// What the attempt on endpoint `i` came to (outlier detection).
    public func record(_ outcome: OutlierDetector.Outcome, endpoint i: Int) {
        let now = clock()
        state.withLock { s in
            guard s.errors.indices.contains(i) else { return }
            switch outcome {
            case .response(let status) where status >= 500: s.errors[i] += 1
            case .localFailure: s.errors[i] += 1
            case .response: break
            }
            s.outliers.record(outcome, host: i, now: now)
        }
    }

    /// The attempt on endpoint `i` is over.
    public func release(_ i: Int) {
        state.withLock { s in
            if s.active.indices.contains(i), s.active[i] > 0 { s.active[i] -= 1 }
        }
    }

    public func target(_ i: Int, clusterName: String) -> UpstreamTarget {
        let endpoint = service.endpoints[min(max(i, 0), service.endpoints.count - 1)]
        return UpstreamTarget(clusterName: clusterName, host: endpoint.host, port: endpoint.port)
    }

    public var stats: [EndpointStats] {
        let now = clock()
        return state.withLock { s in
            service.endpoints.indices.map { i in
                EndpointStats(endpoint: service.endpoints[i], active: s.active[i], total: s.total[i], errors: s.errors[i],
                              ejections: s.outliers.hosts[i].ejections, ejected: s.outliers.isEjected(i, now: now))
            }
        }
    }
}

/// Every multi-endpoint service's `EndpointSet`, by service name; replaced when the service's
/// endpoints or the balancing settings change (a configuration swap), so counters never mix.
public final class EndpointSetRegistry: Sendable {
    private let sets = Mutex<[String: EndpointSet]>([:])

    public init() {}

    /// nil for a service with one endpoint.
    func set(for service: UpstreamService, config: SidecarConfiguration) -> EndpointSet? {
        guard service.endpoints.count > 1 else { return nil }
        return sets.withLock { map in
            if let existing = map[service.name], existing.service == service, existing.policy == config.loadBalancer,
               existing.outlierSettings == config.outlierDetection {
                return existing
            }
            let created = EndpointSet(service: service, policy: config.loadBalancer, outliers: config.outlierDetection)
            map[service.name] = created
            return created
        }
    }

    public var all: [EndpointSet] { sets.withLock { $0.values.sorted { $0.service.name < $1.service.name } } }
}
