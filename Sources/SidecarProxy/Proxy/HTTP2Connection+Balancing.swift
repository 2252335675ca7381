/// An h2c connection to a service with several endpoints: each upstream connection goes to the
/// endpoint the shared `EndpointSet` picks, a connect retry to one not tried yet (Envoy's
/// `previous_hosts`), and the calls' statuses feed outlier detection. The balancing is the
/// HTTP/1 path's (`EndpointSet`); only the unit differs: one connection carries many calls.
extension HTTP2Connection {
    /// - Parameter waiting: calls pending on the current endpoint's cluster, moved with it.
    func chooseEndpoint(waiting: Int) {
        guard let set = endpointSet else { return }
        let i = set.choose(avoiding: triedEndpoints)
        endpointIndex = i
        if !triedEndpoints.contains(i) { triedEndpoints.append(i) }
        let next = set.target(i, clusterName: target.clusterName)
        if next != target {
            target = next
            let moved = runtime.clusters.cluster(for: next)
            cluster.transferPending(waiting, to: moved)
            cluster = moved
        }
    }

    /// - Parameter endpoint: the endpoint the attempt went to (a call's attempt may have gone
    ///   over a side connection, `HTTP2Connection+Retry.swift`); the current one by default.
    func recordOutcome(_ outcome: OutlierDetector.Outcome, endpoint: Int? = nil) {
        guard let set = endpointSet, let i = endpoint ?? endpointIndex else { return }
        set.record(outcome, endpoint: i)
    }

    /// The connection to the current endpoint failed or closed.
    func releaseEndpoint(_ index: Int? = nil) {
        guard let set = endpointSet, let i = index ?? endpointIndex else { return }
        if index == nil || index == endpointIndex { endpointIndex = nil }
        set.release(i)
    }
}
