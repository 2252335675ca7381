import NIOCore
import NIOHTTP2

/// Where a retried HTTP/2 call's next attempt goes. A downstream connection's calls share one
/// upstream connection to one endpoint; a retry must avoid the endpoints the call tried (Envoy's
/// `previous_hosts`), so when the balancer picks another endpoint the attempt goes over a side
/// connection to it, opened on demand, shared by later retries to that endpoint, and closed
/// with the downstream connection. It counts against that endpoint's circuit breaker and
/// keeps the endpoint active in the balancer while open, as the main connection does.
extension HTTP2Connection {
    /// Opens `relay`'s next attempt on an endpoint it has not tried when one is left.
    func openRetryStream(for relay: HTTP2StreamRelay, avoiding tried: [Int]) {
        guard let set = endpointSet else {
            openStream(for: relay)  // one endpoint: the same connection (reconnected if it went)
            return
        }
        let i = set.choose(avoiding: tried)
        if i == endpointIndex, case .ready(_, let multiplexer, let address) = upstream {
            set.release(i)  // the main connection already counts it
            relay.attach(multiplexer, upstreamAddress: address, endpoint: i)
            return
        }
        switch sideUpstreams[i] {
        case .ready(_, let multiplexer, let address):
            set.release(i)
            relay.attach(multiplexer, upstreamAddress: address, endpoint: i)
        case .connecting(var waiting):
            set.release(i)
            waiting.append(relay)
            sideUpstreams[i] = .connecting(waiting)
        case .idle, nil:
            sideUpstreams[i] = .connecting([relay])
            connectSide(i, set: set)
        }
    }

    /// Opens the side connection to endpoint `i`, whose balancer count `choose` took.
    private func connectSide(_ i: Int, set: EndpointSet) {
        guard let loop = downstream?.eventLoop else { return }
        let sideTarget = set.target(i, clusterName: target.clusterName)
        let sideCluster = runtime.clusters.cluster(for: sideTarget)
        let config = snapshot.config
        guard sideCluster.tryReserveConnection(max: config.maxConnections) else {
            set.release(i)
            sideFailed(i, status: 503, flags: ["UO"], reason: "upstream overflow: \(config.maxConnections) connections to \(sideTarget.address) already open")
            return
        }
        dial(sideTarget, on: loop).whenComplete { [self] result in
            switch result {
            case .success(let (channel, multiplexer)):
                channel.closeFuture.assumeIsolated().whenComplete { [self] _ in
                    sideCluster.releaseConnection()
                    set.release(i)
                    if case .ready(let current, _, _) = self.sideUpstreams[i], current === channel { self.sideUpstreams[i] = nil }
                }
                guard case .connecting(let waiting) = self.sideUpstreams[i], !self.closed else {
                    channel.close(promise: nil)
                    return
                }
                let address = channel.remoteAddress.map(UpstreamPool.describe)
                self.sideUpstreams[i] = .ready(channel, multiplexer, address: address)
                for relay in waiting { relay.attach(multiplexer, upstreamAddress: address, endpoint: i) }
            case .failure(let error):
                sideCluster.releaseConnection()
                set.record(.localFailure, endpoint: i)
                set.release(i)
                self.sideFailed(i, status: 503, flags: ["UF"], reason: "upstream connect error: \(error) to \(sideTarget.address)")
            }
        }
    }

    /// The side connection could not be had: each call waiting for it may retry again.
    private func sideFailed(_ i: Int, status: Int, flags: [String], reason: String) {
        guard case .connecting(let waiting) = sideUpstreams[i] else { return }
        sideUpstreams[i] = nil
        for relay in waiting { relay.attemptFailed(status: status, flags: flags, reason: reason) }
    }

    func closeSideUpstreams() {
        for case .ready(let channel, _, _) in sideUpstreams.values { channel.close(promise: nil) }
        sideUpstreams = [:]
    }
}
