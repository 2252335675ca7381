/// A request to a service with several endpoints: which one each attempt goes to (the shared
/// `EndpointSet`: least-request or round-robin, ejected endpoints left out), a retry moved to
/// an endpoint not tried yet (Envoy's `previous_hosts`), and each attempt's outcome reported to
/// outlier detection.
extension ProxyHandler {
    /// The route's target, or for a service with several endpoints the one the balancer picks.
    func balancedTarget(_ ex: Exchange, route: Route, target: UpstreamTarget) -> UpstreamTarget {
        guard let service = route.service, let set = runtime.endpointSets.set(for: service, config: ex.snapshot.config) else {
            return target
        }
        let i = set.choose()
        ex.endpointSet = set
        ex.endpointIndex = i
        ex.triedEndpoints = [i]
        return set.target(i, clusterName: target.clusterName)
    }

    /// Before a retry goes out: an endpoint this request has not tried, when one is left. The
    /// retry slot taken on the old endpoint's cluster is given back there.
    func rebalance(_ ex: Exchange) {
        guard let set = ex.endpointSet, let current = ex.endpointIndex, let target = ex.target, let loopPools else { return }
        set.release(current)
        let i = set.choose(avoiding: ex.triedEndpoints)
        ex.endpointIndex = i
        if !ex.triedEndpoints.contains(i) { ex.triedEndpoints.append(i) }
        guard i != current else { return }
        releaseRetrySlot(ex)
        ex.cluster?.requestFinished()
        let next = set.target(i, clusterName: target.clusterName)
        let pool = loopPools.pool(for: next, clusters: runtime.clusters)
        ex.target = next
        ex.pool = pool
        ex.cluster = pool.cluster
        pool.cluster.requestStarted()
    }

    /// What this attempt came to, for outlier detection.
    func recordOutcome(_ ex: Exchange, _ outcome: OutlierDetector.Outcome) {
        guard let set = ex.endpointSet, let i = ex.endpointIndex else { return }
        set.record(outcome, endpoint: i)
    }

    /// The request is over: its endpoint has one active request less.
    func releaseEndpoint(_ ex: Exchange) {
        guard let set = ex.endpointSet, let i = ex.endpointIndex else { return }
        ex.endpointIndex = nil
        set.release(i)
    }
}
