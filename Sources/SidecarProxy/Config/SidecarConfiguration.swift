import TraceModel

/// Istio's `outboundTrafficPolicy.mode`: what the outbound listener does with hosts it does not know.
public enum OutboundPolicy: String, Sendable, Hashable {
    /// ALLOW_ANY: unknown hosts are passed through to the host named in the request.
    case allowAny = "allow-any"
    /// REGISTRY_ONLY: unknown hosts are refused with 502 and flag NR.
    case registryOnly = "registry-only"
}

/// A gateway route: requests whose path starts with `prefix` go to `service`.
public struct GatewayRoute: Sendable, Hashable {
    public var prefix: String
    public var service: String

    public init(prefix: String, service: String) {
        self.prefix = prefix
        self.service = service
    }

    /// `PREFIX=SERVICE`.
    public static func parse(_ text: String) throws(ConfigurationError) -> GatewayRoute {
        guard let eq = text.firstIndex(of: "=") else { throw ConfigurationError("route must look like PREFIX=SERVICE, got '\(text)'") }
        let prefix = String(text[..<eq]).trimmed
        let service = String(text[text.index(after: eq)...]).trimmed.lowercased()
        guard prefix.hasPrefix("/") else { throw ConfigurationError("route prefix must start with '/', got '\(prefix)'") }
        guard !service.isEmpty else { throw ConfigurationError("route service is empty in '\(text)'") }
        return GatewayRoute(prefix: prefix, service: service)
    }
}

/// Istio/Envoy custom span tags: a literal, a proxy environment variable, or a request header.
public struct CustomTag: Sendable, Hashable {
    public enum Source: Sendable, Hashable {
        case literal(String)
        /// The variable's name and its value, read once when the configuration is built.
        case environment(name: String, value: String?)
        /// A request header, lower-cased.
        case header(String)
    }

    public var name: String
    public var source: Source

    public init(name: String, source: Source) {
        self.name = name
        self.source = source
    }

    /// `NAME=literal:VALUE`, `NAME=env:VAR` or `NAME=header:HEADER`.
    public static func parse(_ text: String, environment: [String: String]) throws(ConfigurationError) -> CustomTag {
        guard let eq = text.firstIndex(of: "=") else {
            throw ConfigurationError("custom tag must look like NAME=literal:VALUE, NAME=env:VAR or NAME=header:NAME, got '\(text)'")
        }
        let name = String(text[..<eq]).trimmed
        let spec = String(text[text.index(after: eq)...])
        guard !name.isEmpty else { throw ConfigurationError("custom tag name is empty in '\(text)'") }
        guard let colon = spec.firstIndex(of: ":") else {
            throw ConfigurationError("custom tag '\(name)' needs a kind: literal:, env: or header:, got '\(spec)'")
        }
        let kind = spec[..<colon].lowercased()
        let value = String(spec[spec.index(after: colon)...])
        switch kind {
        case "literal":
            return CustomTag(name: name, source: .literal(value))
        case "env", "environment":
            guard !value.isEmpty else { throw ConfigurationError("custom tag '\(name)': env: needs a variable name") }
            return CustomTag(name: name, source: .environment(name: value, value: environment[value]))
        case "header":
            guard !value.isEmpty else { throw ConfigurationError("custom tag '\(name)': header: needs a header name") }
            return CustomTag(name: name, source: .header(value.lowercased()))
        default:
            throw ConfigurationError("custom tag '\(name)': unknown kind '\(kind)' (use literal, env or header)")
        }
    }

    var specText: String {
        switch source {
        case .literal(let v): return "literal:" + v
        case .environment(let n, _): return "env:" + n
        case .header(let h): return "header:" + h
        }
    }
}

/// Where finished spans go. The telemetry side reads this; the data plane only carries it.
public struct ExporterConfiguration: Sendable, Hashable {
    /// "zipkin" (JSON v2 to /api/v2/spans), "otlp" (OTLP/HTTP to /v1/traces), "otlp-grpc"
    /// (OTLP/gRPC to host:4317) or "none"; nil: chosen by the endpoint (`grpc://…` is
    /// OTLP/gRPC, `…/v1/traces` OTLP/HTTP, anything else Zipkin).
    public var kind: String?
    /// Base URL of the collector, e.g. http://127.0.0.1:9411. nil = do not export.
    public var endpoint: String?
    public var batchSize: Int = 512
    public var flushIntervalMillis: Int = 1000

    public init() {}

    /// The format in force: the explicit `kind`, else what the endpoint's path names.
    public var effectiveKind: String {
        if let kind { return kind }
        if endpoint?.lowercased().hasPrefix("grpc://") == true { return "otlp-grpc" }
        return endpoint?.hasSuffix("/v1/traces") == true ? "otlp" : "zipkin"
    }
}

public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The sidecar's effective configuration. A plain value: the running proxy reads it through
/// `ConfigurationBox`, so it can be swapped whole at runtime (sampling, upstreams, …).
/// Ports: 0 picks a free port, a negative port disables the listener.
public struct SidecarConfiguration: Sendable, Equatable {
    /// This workload's service name (span service, `x-envoy-downstream-service-cluster`).
    public var serviceName = "unknown"
    /// Address data-plane and metrics listeners bind to. Admin is always on loopback.
    public var bindHost = "127.0.0.1"

    public var inboundPort = 15006
    /// The local application behind the inbound listener; nil disables inbound.
    public var appPort: Int?
    public var appHost = "127.0.0.1"
    public var outboundPort = 15001
    /// nil disables the gateway listener.
    public var gatewayPort: Int?
    public var routes: [GatewayRoute] = []
    public var metricsPort = 15090
    public var adminPort = 15000

    public var upstreams: [UpstreamService] = []
    public var registryFile: String?
    public var outboundPolicy: OutboundPolicy = .allowAny
    /// Outbound requests whose host names no known service go to this upstream (a per-upstream
    /// egress listener, as the mesh runner gives each `<NAME>_URL`). nil: route by host only.
    public var defaultUpstream: String?

    /// 0...100, 0.01 precision.
    public var samplingPercent: Double = 100
    public var propagation: [PropagationFormat] = [.w3c, .b3multi]
    public var healthCheckPaths: [String] = ["/healthz", "/readyz", "/health"]
    public var customTags: [CustomTag] = []
    /// Span names for matching paths (`--route-template /api/reports/{id}`), see `RouteTemplates`.
    public var routeTemplates: [RouteTemplate] = []
    /// Distinct span names before new ones fold into `METHOD /prefix/*` (`RouteCardinality`);
    /// 0 turns the cap and id learning off.
    public var maxSpanNames = 500
    public var exporter = ExporterConfiguration()
    /// Parent inference (propagation doctor): an outbound request without trace context, made
    /// while exactly one inbound request of this service is in flight, becomes that request's
    /// child. Off by default: it is a guess, if a safe one (see `ParentInference`).
    public var inferParent = false

    // Per-upstream resilience (Envoy cluster settings).
    public var connectTimeoutMillis: Int64 = 10_000
    /// Route timeout: from the request head until the response is complete. 0 disables. An
    /// HTTP/2 (gRPC) call has it until its response headers arrive, so a long stream that has
    /// answered is not cut; the caller's `grpc-timeout` bounds the whole call.
    public var requestTimeoutMillis: Int64 = 15_000
    /// Envoy's `per_try_timeout`: how long each attempt may wait for its response head once the
    /// request is sent. On expiry an outbound or gateway request is retried (within `maxRetries`
    /// and the budget) if its body was kept; otherwise it is answered 504 UT. 0 disables (Istio's
    /// default).
    public var perTryTimeoutMillis: Int64 = 0
    /// Retries per request, on connect failure and on the statuses below (Istio's default
    /// outbound policy: 2).
    public var maxRetries = 2
    /// Upstream response statuses an outbound or gateway request is retried on, when its body
    /// fits the replay limit (Istio's default `retriable-status-codes`: 503). Empty disables
    /// status retries.
    public var retryOnStatus: [Int] = [503]
    /// Retry budget (Envoy `retry_budget`): concurrent retries allowed as a share of active requests.
    public var retryBudgetPercent: Double = 20
    /// Floor of the retry budget (Envoy `min_retry_concurrency`).
    public var minRetryConcurrency = 3
    /// Circuit breaker: connections per upstream across all event loops.
    public var maxConnections = 1024
    /// Circuit breaker: requests waiting for a connection per upstream.
    public var maxPendingRequests = 1024
    /// Idle upstream connections kept per upstream per event loop.
    public var maxIdlePerUpstream = 64
    /// How a service with several endpoints (`--upstream NAME=A,B,C`) is balanced.
    public var loadBalancer = LoadBalancerPolicy.leastRequest
    /// Ejecting failing endpoints of such a service (`OutlierDetector.Settings` has the defaults).
    public var outlierDetection = OutlierDetector.Settings()

    // Downstream hardening.
    public var maxDownstreamConnections = 10_000
    public var maxHeaderBytes = 64 * 1024
    /// Time a client has to send a complete request head once it started one.
    public var headerTimeoutMillis: Int64 = 10_000
    /// Time a downstream connection may sit with no request and no bytes before it is closed.
    public var idleTimeoutMillis: Int64 = 300_000
    /// How often an open tunnel's bytes go to Istio's TCP metrics (Istio's `tcp_reporting_duration`,
    /// 5 s). Not a flag: tests shorten it.
    public var tcpReportingIntervalMillis: Int64 = 5_000
    /// On SIGTERM, how long in-flight requests get to finish.
    public var drainTimeoutMillis: Int64 = 10_000

    /// Transparent capture (`--capture`): listeners for connections that iptables redirected
    /// (`meshtrace iptables`), each sent where it was going (`SidecarConfiguration+Capture.swift`).
    public var capture = CaptureSettings()

    public var logLevel = "info"
    /// Event-loop threads. One by default: a sidecar shares its machine with the app it serves,
    /// and on small machines a second loop mostly adds context switches (docs/performance.md).
    public var threads = 1

    public init() {}

    /// Names of the listeners that will run.
    public var inboundEnabled: Bool { appPort != nil && inboundPort >= 0 }
    /// In capture mode the forward-proxy listener gives way to the outbound capture listener on
    /// the same port (15001 for both by default); on another port it runs beside it.
    public var outboundEnabled: Bool { outboundPort >= 0 && !(capture.enabled && outboundPort == capture.outboundPort) }
    public var gatewayEnabled: Bool { (gatewayPort ?? -1) >= 0 }

    public func upstream(named name: String) -> UpstreamService? {
        upstreams.first { $0.name == name }
    }

    /// Checks cross-field rules; throws the first problem.
    public func validate() throws(ConfigurationError) {
        for (flag, port) in [("inbound-port", inboundPort), ("outbound-port", outboundPort), ("metrics-port", metricsPort), ("admin-port", adminPort)]
        where port > 65535 {
            throw ConfigurationError("--\(flag) must be at most 65535, got \(port)")
        }
        if let appPort, !(1...65535).contains(appPort) { throw ConfigurationError("--app-port must be between 1 and 65535, got \(appPort)") }
        if let gatewayPort, gatewayPort > 65535 { throw ConfigurationError("--gateway-port must be at most 65535, got \(gatewayPort)") }
        try validateCapture()
        if !inboundEnabled && !outboundEnabled && !gatewayEnabled && !capture.enabled {
            throw ConfigurationError("no listener enabled: give --app-port (inbound), an --outbound-port >= 0, a --gateway-port or --capture")
        }
        if gatewayEnabled && routes.isEmpty { throw ConfigurationError("--gateway-port needs at least one --route PREFIX=SERVICE") }
        for route in routes where upstream(named: route.service) == nil {
            throw ConfigurationError("route \(route.prefix) names service '\(route.service)' that has no --upstream")
        }
        guard (0...100).contains(samplingPercent) else { throw ConfigurationError("--sampling must be between 0 and 100, got \(samplingPercent)") }
        guard !propagation.isEmpty else { throw ConfigurationError("--propagation needs at least one format") }
        guard connectTimeoutMillis > 0 else { throw ConfigurationError("--connect-timeout must be positive") }
        guard requestTimeoutMillis >= 0 else { throw ConfigurationError("--request-timeout must not be negative") }
        guard perTryTimeoutMillis >= 0 else { throw ConfigurationError("--per-try-timeout must not be negative") }
        guard maxRetries >= 0 else { throw ConfigurationError("--max-retries must not be negative") }
        guard maxConnections > 0, maxPendingRequests >= 0 else { throw ConfigurationError("--max-connections must be positive and --max-pending-requests not negative") }
        guard maxDownstreamConnections > 0 else { throw ConfigurationError("--max-downstream-connections must be positive") }
        guard maxHeaderBytes >= 1024 else { throw ConfigurationError("--max-header-bytes must be at least 1024") }
        guard headerTimeoutMillis > 0, idleTimeoutMillis > 0 else { throw ConfigurationError("--header-timeout and --idle-timeout must be positive") }
        var seen = Set<String>()
        for tag in customTags where !seen.insert(tag.name).inserted {
            throw ConfigurationError("custom tag '\(tag.name)' is given twice; tag names must be unique")
        }
    }
}

/// Host and port from `HOST:PORT` or `[v6]:PORT`.
func parseHostPort(_ text: String, what: String) throws(ConfigurationError) -> (String, Int) {
    var host: Substring
    var portText: Substring
    if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
        host = text[text.index(after: text.startIndex)..<close]
        let rest = text[text.index(after: close)...]
        guard rest.hasPrefix(":") else { throw ConfigurationError("\(what): expected HOST:PORT, got '\(text)'") }
        portText = rest.dropFirst()
    } else {
        guard let colon = text.lastIndex(of: ":") else { throw ConfigurationError("\(what): expected HOST:PORT, got '\(text)'") }
        host = text[..<colon]
        portText = text[text.index(after: colon)...]
    }
    guard !host.isEmpty else { throw ConfigurationError("\(what): host is empty in '\(text)'") }
    guard let port = Int(portText), (1...65535).contains(port) else { throw ConfigurationError("\(what): bad port in '\(text)'") }
    return (String(host), port)
}

extension String {
    var trimmed: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
