import NIOHTTP1

/// Where a request goes, decided from the listener's direction, the request head and the config.
public struct Route: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case forward(UpstreamTarget)
        /// Answer locally: status, Envoy flag (e.g. "NR"), reason.
        case reject(status: HTTPResponseStatus, flag: String?, reason: String)
    }

    public var outcome: Outcome
    /// Path with query in origin form, as it is sent upstream.
    public var path: String
    /// Host[:port] the client asked for.
    public var authority: String
    public var destinationService: String
    /// Cluster name even for rejections (BlackHoleCluster for REGISTRY_ONLY misses).
    public var clusterName: String?
    /// The mesh service forwarded to, whose endpoints the request may be balanced over (the
    /// outcome's target is its first endpoint); nil for the app and passthrough.
    public var service: UpstreamService? = nil
}

public enum Router {
    public static func route(direction: ProxyDirection, head: HTTPRequestHead, snapshot: ConfigurationBox.Snapshot) -> Route {
        route(direction: direction, method: head.method, uri: head.uri, host: head.headers.first(name: "host"), snapshot: snapshot)
    }

    /// - Parameter host: the request's Host header (the caller has usually read it already).
    static func route(direction: ProxyDirection, method: HTTPMethod, uri: String, host: String?, snapshot: ConfigurationBox.Snapshot) -> Route {
        let config = snapshot.config
        if method.isCONNECT {
            guard direction == .outbound else {
                return Route(outcome: .reject(status: .methodNotAllowed, flag: nil, reason: "CONNECT tunnels are served by the outbound listener only"),
                             path: uri, authority: uri, destinationService: "unknown", clusterName: nil)
            }
            return tunnelRoute(uri, snapshot: snapshot)
        }
        switch direction {
        case .inbound:
            let appPort = config.appPort ?? 0
            let cluster = snapshot.inboundCluster
            return Route(
                outcome: .forward(UpstreamTarget(clusterName: cluster, host: config.appHost, port: appPort)),
                path: uri, authority: host ?? "", destinationService: config.serviceName,
                clusterName: cluster)

        case .outbound:
            guard let target = RequestTarget.parse(uri: uri, hostHeader: host) else {
                return Route(outcome: .reject(status: .badRequest, flag: nil, reason: "cannot tell the destination host"),
                             path: uri, authority: "", destinationService: "unknown", clusterName: nil)
            }
            if target.scheme == "https" {
                return Route(outcome: .reject(status: .badRequest, flag: nil, reason: "an https:// URL goes through CONNECT: point HTTPS_PROXY (not HTTP_PROXY) at this listener"),
                             path: target.path, authority: target.authority, destinationService: target.host, clusterName: nil)
            }
            // A per-upstream egress listener (`defaultUpstream`) sends everything that names no
            // known service to its one upstream, for clients that ignore HTTP_PROXY and call
            // `<NAME>_URL=http://127.0.0.1:PORT` directly.
            let service = lookup(target.host, in: snapshot) ?? config.defaultUpstream.flatMap { snapshot.upstreamsByName[$0] }
            return egress(target, service: service, path: target.path, authority: target.authority, snapshot: snapshot)

        case .gateway:
            let authority = host ?? ""
            var path = uri
            if let target = RequestTarget.parse(uri: uri, hostHeader: authority), uri.hasPrefix("http") { path = target.path }
            let pathOnly = path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? path
            var best: GatewayRoute?
            for route in config.routes where matches(prefix: route.prefix, path: pathOnly) {
                if best == nil || route.prefix.count > (best?.prefix.count ?? 0) { best = route }
            }
            guard let best, let service = snapshot.upstreamsByName[best.service] else {
                return Route(outcome: .reject(status: .notFound, flag: "NR", reason: "no route for \(pathOnly)"),
                             path: path, authority: authority, destinationService: "unknown", clusterName: nil)
            }
            let cluster = "outbound|\(service.port)||\(service.name)"
            return Route(outcome: .forward(UpstreamTarget(clusterName: cluster, host: service.host, port: service.port)),
                         path: path, authority: authority, destinationService: service.name, clusterName: cluster, service: service)
        }
    }

    /// A CONNECT tunnel (`CONNECT host:port`, what clients send through `HTTPS_PROXY`): to a
    /// registered service's address when the host names one, otherwise passed through as the
    /// outbound policy allows, as Envoy passes through TLS it cannot route. The route's path is
    /// the authority, so the span reads `CONNECT host:port`.
    static func tunnelRoute(_ uri: String, snapshot: ConfigurationBox.Snapshot) -> Route {
        guard let target = RequestTarget.parse(connectAuthority: uri) else {
            return Route(outcome: .reject(status: .badRequest, flag: nil, reason: "CONNECT needs a host:port target, got '\(uri.prefix(100))'"),
                         path: uri, authority: "", destinationService: "unknown", clusterName: nil)
        }
        return egress(target, service: lookup(target.host, in: snapshot), path: uri, authority: "", snapshot: snapshot)
    }

    /// Out of the mesh's own listener toward `target`: to `service`'s address when the request
    /// names one (Envoy's `outbound|port||name` cluster), otherwise as the outbound policy says.
    private static func egress(
        _ target: RequestTarget, service: UpstreamService?, path: String, authority: String, snapshot: ConfigurationBox.Snapshot
    ) -> Route {
        if let service {
            let cluster = "outbound|\(target.port)||\(service.name)"
            return Route(outcome: .forward(UpstreamTarget(clusterName: cluster, host: service.host, port: service.port)),
                         path: path, authority: authority, destinationService: service.name, clusterName: cluster, service: service)
        }
        switch snapshot.config.outboundPolicy {
        case .allowAny:
            return Route(outcome: .forward(UpstreamTarget(clusterName: "PassthroughCluster", host: target.host, port: target.port)),
                         path: path, authority: authority, destinationService: target.host, clusterName: "PassthroughCluster")
        case .registryOnly:
            return Route(outcome: .reject(status: .badGateway, flag: "NR", reason: "no route to \(target.host): not in the registry (registry-only)"),
                         path: path, authority: authority, destinationService: target.host, clusterName: "BlackHoleCluster")
        }
    }

    /// Where an HTTP/2 prior-knowledge connection's streams (gRPC over h2c) go: the app, on the
    /// inbound listener; the one upstream of a per-upstream egress listener. Nowhere else: an
    /// h2c client sends no proxy-style target, so on a shared listener there is no destination.
    static func http2Route(direction: ProxyDirection, snapshot: ConfigurationBox.Snapshot) -> Route {
        let config = snapshot.config
        switch direction {
        case .inbound:
            let cluster = snapshot.inboundCluster
            return Route(outcome: .forward(UpstreamTarget(clusterName: cluster, host: config.appHost, port: config.appPort ?? 0)),
                         path: "*", authority: "", destinationService: config.serviceName, clusterName: cluster)
        case .outbound:
            if let service = config.defaultUpstream.flatMap({ snapshot.upstreamsByName[$0] }) {
                let cluster = "outbound|\(service.port)||\(service.name)"
                return Route(outcome: .forward(UpstreamTarget(clusterName: cluster, host: service.host, port: service.port)),
                             path: "*", authority: "", destinationService: service.name, clusterName: cluster, service: service)
            }
        case .gateway:
            break
        }
        return Route(outcome: .reject(status: .badRequest, flag: "NR", reason: "HTTP/2 (h2c) is served only on the inbound listener and per-upstream egress listeners"),
                     path: "*", authority: "", destinationService: "unknown", clusterName: nil)
    }

    /// `backend`, `backend.default`, `backend.default.svc.cluster.local` all find `backend`.
    static func lookup(_ host: String, in snapshot: ConfigurationBox.Snapshot) -> UpstreamService? {
        if let exact = snapshot.upstreamsByName[host] { return exact }
        if let dot = host.firstIndex(of: "."), !host.allSatisfy({ $0.isNumber || $0 == "." }) {
            return snapshot.upstreamsByName[String(host[..<dot])]
        }
        return nil
    }

    /// Prefix match on path segments' text, as Envoy's `prefix` does (plain string prefix).
    static func matches(prefix: String, path: String) -> Bool {
        path.hasPrefix(prefix)
    }
}

/// The target of a forward-proxy request: absolute form (`http://host:port/path`) or origin form
/// plus Host.
public struct RequestTarget: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int
    public var authority: String
    public var path: String

    /// A CONNECT request's authority form, `host:port`: the port is required, and there is no
    /// userinfo (RFC 9110 §9.3.6).
    public static func parse(connectAuthority uri: String) -> RequestTarget? {
        guard !uri.contains("/"), !uri.contains("@"), let colon = uri.lastIndex(of: ":"), colon != uri.startIndex,
              uri.first != "[" || uri[uri.index(before: colon)] == "]"
        else { return nil }
        return parse(uri: "/", hostHeader: uri).map { RequestTarget(scheme: "tcp", host: $0.host, port: $0.port, authority: $0.authority, path: "") }
    }

    public static func parse(uri: String, hostHeader: String?) -> RequestTarget? {
        var scheme = "http"
        var authority: Substring
        var path: Substring
        let lower = uri.prefix(8).lowercased()
        if lower.hasPrefix("http://") || lower.hasPrefix("https://") {
            scheme = lower.hasPrefix("https://") ? "https" : "http"
            let rest = uri.dropFirst(scheme.count + 3)
            let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            authority = rest[..<end]
            path = rest[end...]
            if path.isEmpty {
                path = "/"
            } else if path.first == "?" {
                path = Substring("/" + path)
            }
        } else {
            guard let hostHeader, !hostHeader.isEmpty else { return nil }
            authority = Substring(hostHeader)
            path = Substring(uri)
        }
        // Drop userinfo (never forwarded).
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        guard !authority.isEmpty else { return nil }
        var host: Substring
        var port = scheme == "https" ? 443 : 80
        if authority.first == "[" {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let rest = authority[authority.index(after: close)...]
            if rest.first == ":" {
                guard let p = portNumber(rest.dropFirst()) else { return nil }
                port = p
            } else if !rest.isEmpty {
                return nil
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let p = portNumber(authority[authority.index(after: colon)...]) else { return nil }
            port = p
        } else {
            host = authority
        }
        // Printable ASCII without '/', and brackets only around an IPv6 literal (taken off above).
        guard !host.isEmpty, host.utf8.allSatisfy({ $0 > 32 && $0 < 127 && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "[") && $0 != UInt8(ascii: "]") })
        else { return nil }
        return RequestTarget(scheme: scheme, host: host.lowercased(), port: port, authority: String(authority), path: String(path))
    }

    /// Digits only (`Int` alone would take "+80"), 1...65535.
    private static func portNumber(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 5, text.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let p = Int(text), (1...65535).contains(p)
        else { return nil }
        return p
    }
}
