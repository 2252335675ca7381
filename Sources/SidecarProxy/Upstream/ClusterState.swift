import NIOCore
import Synchronization

/// Where one upstream cluster's connections go.
public struct UpstreamTarget: Sendable, Hashable {
    /// Envoy-style cluster name: `outbound|PORT||NAME`, `inbound|PORT||`, `PassthroughCluster`.
    public var clusterName: String
    public var host: String
    public var port: Int
    /// The address to connect from, when it matters: inbound capture's hop to the app leaves from
    /// 127.0.0.6 (or ::6), which the capture rules do not redirect again.
    public var sourceAddress: String?

    public init(clusterName: String, host: String, port: Int, sourceAddress: String? = nil) {
        self.clusterName = clusterName
        self.host = host
        self.port = port
        self.sourceAddress = sourceAddress
    }

    var key: String { clusterName + "#" + host + ":" + String(port) }
    public var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One upstream's shared counters across every event loop: the circuit breaker (connections,
/// pending requests) and the retry budget. Checked with one lock, a few times per request.
public final class ClusterState: Sendable {
    public let target: UpstreamTarget

    public struct Counters: Sendable, Equatable {
        public var connections = 0
        public var pending = 0
        public var activeRequests = 0
        public var activeRetries = 0
        public var overflows = 0
        public var retriesDenied = 0
    }

    private let counters = Mutex(Counters())
    /// Wakes a waiting pool on each event loop when a connection slot frees up.
    private let wakers = Mutex<[@Sendable () -> Void]>([])

    init(target: UpstreamTarget) {
        self.target = target
    }

    public var snapshot: Counters { counters.withLock { $0 } }

    func tryReserveConnection(max: Int) -> Bool {
        counters.withLock { c in
            guard c.connections < max else { return false }
            c.connections += 1
            return true
        }
    }

    func releaseConnection() {
        counters.withLock { $0.connections -= 1 }
        wakeAll()
    }

    /// Tells every loop's pool that capacity changed or that someone is waiting for it.
    func wakeAll() {
        for wake in wakers.withLock({ $0 }) { wake() }
    }

    var pendingCount: Int { counters.withLock { $0.pending } }

    func tryReservePending(max: Int) -> Bool {
        counters.withLock { c in
            guard c.pending < max else {
                c.overflows += 1
                return false
            }
            c.pending += 1
            return true
        }
    }

    func releasePending() {
        counters.withLock { $0.pending -= 1 }
    }

    /// Calls waiting for a connection that moves to another endpoint (`HTTP2Connection`) are
    /// pending there from now on.
    func transferPending(_ n: Int, to other: ClusterState) {
        guard n > 0, other !== self else { return }
        counters.withLock { $0.pending -= n }
        other.counters.withLock { $0.pending += n }
    }

    func requestStarted() { counters.withLock { $0.activeRequests += 1 } }
    func requestFinished() { counters.withLock { $0.activeRequests -= 1 } }

    /// Envoy's retry budget: concurrent retries may be `percent` of active requests, but at
    /// least `minConcurrency`.
    func tryStartRetry(percent: Double, minConcurrency: Int) -> Bool {
        counters.withLock { c in
            let allowed = max(minConcurrency, Int(Double(c.activeRequests) * percent / 100))
            guard c.activeRetries < allowed else {
                c.retriesDenied += 1
                return false
            }
            c.activeRetries += 1
            return true
        }
    }

    func retryFinished() { counters.withLock { $0.activeRetries -= 1 } }

    func addWaker(_ wake: @escaping @Sendable () -> Void) {
        wakers.withLock { $0.append(wake) }
    }
}

/// Every cluster the proxy has talked to, by target.
public final class ClusterRegistry: Sendable {
    private let clusters = Mutex<[String: ClusterState]>([:])

    public init() {}

    public func cluster(for target: UpstreamTarget) -> ClusterState {
        let key = target.key
        return clusters.withLock { map in
            if let existing = map[key] { return existing }
            let created = ClusterState(target: target)
            map[key] = created
            return created
        }
    }

    public var all: [ClusterState] { clusters.withLock { Array($0.values) } }
}
