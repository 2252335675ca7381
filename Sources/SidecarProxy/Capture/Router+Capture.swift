import NIOHTTP1
import TraceWire

/// Routes for captured connections, whose destination the kernel told us (`SO_ORIGINAL_DST`).
/// Inbound goes to the app at the address it was sent to. Outbound is named from the `Host`
/// header, else from a registry entry with the destination's address, else `IP:port`, and goes
/// to the registry's endpoint of a service the `Host` names, else where it was going, as
/// Envoy's `virtualOutbound` listener sends unmatched traffic to `PassthroughCluster`.
extension Router {
    static func capturedRoute(
        direction: ProxyDirection, destination: CapturedDestination, method: HTTPMethod, uri: String, host: String?,
        snapshot: ConfigurationBox.Snapshot
    ) -> Route {
        guard direction == .outbound else { return inboundCapture(destination, path: uri, authority: host ?? "", snapshot: snapshot) }
        let target = RequestTarget.parse(uri: uri, hostHeader: host)
        let path = target?.path ?? uri
        let authority = host ?? destination.address
        if let target, !isIPLiteral(target.host) {
            guard let service = lookup(target.host, in: snapshot) else {
                return byAddress(destination, named: target.host, path: path, authority: authority, snapshot: snapshot)
            }
            let cluster = "outbound|\(destination.port)||\(service.name)"
            // The registry's endpoint serves the port it lists; another port of the same name
            // goes where it was going, under the service's name.
            let port = host?.contains(":") == true ? target.port : destination.port
            let upstream = port == service.port
                ? UpstreamTarget(clusterName: cluster, host: service.host, port: service.port)
                : UpstreamTarget(clusterName: cluster, host: destination.host, port: destination.port)
            return Route(outcome: .forward(upstream), path: path, authority: authority, destinationService: service.name, clusterName: cluster)
        }
        return byAddress(destination, named: nil, path: path, authority: authority, snapshot: snapshot)
    }

    /// An h2c connection (gRPC): its streams go where the connection was going.
    static func capturedHTTP2Route(direction: ProxyDirection, destination: CapturedDestination, snapshot: ConfigurationBox.Snapshot) -> Route {
        guard direction == .outbound else { return inboundCapture(destination, path: "*", authority: "", snapshot: snapshot) }
        return byAddress(destination, named: nil, path: "*", authority: "", snapshot: snapshot)
    }

    /// An opaque TCP connection: the same route as an HTTP/2 one (no request to read a name from).
    static func capturedTCPRoute(direction: ProxyDirection, destination: CapturedDestination, snapshot: ConfigurationBox.Snapshot) -> Route {
        capturedHTTP2Route(direction: direction, destination: destination, snapshot: snapshot)
    }

    /// The registry service at `host` (any port), for naming a captured connection's source.
    static func service(atHost host: String, in snapshot: ConfigurationBox.Snapshot) -> UpstreamService? {
        snapshot.upstreamsByAddress[host]
    }

    private static func inboundCapture(_ destination: CapturedDestination, path: String, authority: String, snapshot: ConfigurationBox.Snapshot) -> Route {
        let cluster = "inbound|\(destination.port)||"
        let target = UpstreamTarget(clusterName: cluster, host: destination.host, port: destination.port, sourceAddress: destination.passthroughSource)
        return Route(outcome: .forward(target), path: path, authority: authority, destinationService: snapshot.config.serviceName, clusterName: cluster)
    }

    /// To where it was going, named by the registry entry at that address, else `named`, else
    /// the address; refused under registry-only when the registry does not know it.
    private static func byAddress(
        _ destination: CapturedDestination, named: String?, path: String, authority: String, snapshot: ConfigurationBox.Snapshot
    ) -> Route {
        let target = UpstreamTarget(clusterName: "PassthroughCluster", host: destination.host, port: destination.port)
        // The entry for this address and port, else for the address alone (another port of the
        // same service, as a Kubernetes Service has several).
        let entry = snapshot.upstreamsByAddress["\(destination.host):\(destination.port)"] ?? snapshot.upstreamsByAddress[destination.host]
        if let service = entry {
            let cluster = "outbound|\(destination.port)||\(service.name)"
            var known = target
            known.clusterName = cluster
            return Route(outcome: .forward(known), path: path, authority: authority, destinationService: service.name, clusterName: cluster)
        }
        let name = named ?? destination.address
        if snapshot.config.outboundPolicy == .registryOnly {
            return Route(outcome: .reject(status: .badGateway, flag: "NR", reason: "no route to \(name): not in the registry (registry-only)"),
                         path: path, authority: authority, destinationService: name, clusterName: "BlackHoleCluster")
        }
        return Route(outcome: .forward(target), path: path, authority: authority, destinationService: name, clusterName: "PassthroughCluster")
    }

    static func isIPLiteral(_ host: String) -> Bool {
        IPAddress.ipv4Value(host[...]) != nil || IPAddress.ipv6Bytes(host[...]) != nil
    }
}
