/// One address of an upstream service: a replica's inbound sidecar (or the app itself).
public struct UpstreamEndpoint: Sendable, Hashable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// `host:port`, an IPv6 host bracketed.
    public var address: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// One upstream service: its name in the mesh and where its replicas' inbound sidecars listen.
/// Requests to it are spread over `endpoints` by `LoadBalancer` (see `EndpointSet`).
public struct UpstreamService: Sendable, Hashable {
    public var name: String
    /// Never empty: `parse` and the initialisers guarantee one endpoint at least.
    public var endpoints: [UpstreamEndpoint]

    public init(name: String, host: String, port: Int) {
        self.name = name
        self.endpoints = [UpstreamEndpoint(host: host, port: port)]
    }

    /// - Precondition: `endpoints` is not empty (the first one is the service's address for
    ///   what names a single address: config dumps, captured-address lookups).
    public init(name: String, endpoints: [UpstreamEndpoint]) {
        self.name = name
        self.endpoints = endpoints
    }

    /// The first endpoint's host: the service's address where one address is asked for.
    public var host: String { endpoints.first?.host ?? "" }
    public var port: Int { endpoints.first?.port ?? 0 }

    /// `NAME=HOST:PORT` or `NAME=HOST:PORT,HOST:PORT,…` (one per replica).
    public static func parse(_ text: String) throws(ConfigurationError) -> UpstreamService {
        guard let eq = text.firstIndex(of: "=") else {
            throw ConfigurationError("upstream must look like NAME=HOST:PORT or NAME=HOST:PORT,HOST:PORT,…, got '\(text)'")
        }
        let name = String(text[..<eq]).trimmed.lowercased()
        guard !name.isEmpty else { throw ConfigurationError("upstream name is empty in '\(text)'") }
        let list = text[text.index(after: eq)...].split(separator: ",", omittingEmptySubsequences: false)
        var endpoints: [UpstreamEndpoint] = []
        for (i, item) in list.enumerated() {
            let trimmed = String(item).trimmed
            guard !trimmed.isEmpty else {
                throw ConfigurationError("upstream '\(name)': endpoint \(i + 1) of \(list.count) is empty in '\(text)' (write HOST:PORT,HOST:PORT)")
            }
            let (host, port) = try parseHostPort(trimmed, what: "upstream '\(name)' endpoint \(i + 1)")
            let endpoint = UpstreamEndpoint(host: host, port: port)
            guard !endpoints.contains(endpoint) else {
                throw ConfigurationError("upstream '\(name)': endpoint \(endpoint.address) is listed twice")
            }
            endpoints.append(endpoint)
        }
        return UpstreamService(name: name, endpoints: endpoints)
    }
}
