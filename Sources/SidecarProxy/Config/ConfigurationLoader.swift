import TraceModel
import Yams

/// Builds a `SidecarConfiguration` from flags and YAML. Every flag has a YAML key of the same
/// name (without the dashes) and takes the same text, so there is one parser for both:
///
/// ```yaml
/// service: frontend
/// app-port: 8080
/// upstream: [backend=127.0.0.1:15006]
/// sampling: 10
/// custom-tag: ["env=literal:prod"]
/// ```
public enum ConfigurationLoader {
    /// Options that may be given several times (repeatable flags / YAML lists).
    public static let repeatable: Set<String> = ["upstream", "route", "custom-tag", "health-check-path", "route-template"]

    /// Options that take one comma list (a YAML list is joined into it).
    static let listOptions: Set<String> = ["propagation", "health-check-path", "retry-on-status"]

    /// Every option name understood, for documentation and for rejecting typos in YAML.
    public static let knownOptions: [String] = [
        "service", "host", "inbound-port", "app-port", "app-host", "outbound-port", "gateway-port", "route",
        "metrics-port", "admin-port", "upstream", "registry", "outbound-policy", "sampling", "propagation",
        "health-check-path", "custom-tag", "exporter", "collector", "connect-timeout", "request-timeout", "per-try-timeout", "max-retries",
        "retry-on-status", "retry-budget-percent", "min-retry-concurrency", "max-connections", "max-pending-requests", "max-idle-per-upstream",
        "max-downstream-connections", "max-header-bytes", "header-timeout", "idle-timeout", "drain-timeout", "log-level", "threads",
        "infer-parent", "export-batch-size", "export-flush-interval", "route-template", "max-span-names",
        "capture", "inbound-capture-port", "outbound-capture-port", "health-port", "protocol-detection-timeout",
    ] + balancingOptions

    /// Applies one option. Repeatable options append; others replace.
    public static func apply(
        _ option: String, _ value: String, to config: inout SidecarConfiguration, environment: [String: String] = [:]
    ) throws(ConfigurationError) {
        let v = value.trimmed
        switch option {
        case "service": config.serviceName = try nonEmpty(v, option)
        case "host": config.bindHost = try host(v, option)
        case "inbound-port": config.inboundPort = try port(v, option)
        case "app-port": config.appPort = try port(v, option)
        case "app-host": config.appHost = try host(v, option)
        case "outbound-port": config.outboundPort = try port(v, option)
        case "gateway-port": config.gatewayPort = try port(v, option)
        case "metrics-port": config.metricsPort = try port(v, option)
        case "admin-port": config.adminPort = try port(v, option)
        case "route": config.routes.append(try GatewayRoute.parse(v))
        case "upstream":
            let upstream = try UpstreamService.parse(v)
            config.upstreams.removeAll { $0.name == upstream.name }
            config.upstreams.append(upstream)
        case "registry": config.registryFile = try nonEmpty(v, option)
        case "outbound-policy":
            let normalized = v.lowercased().replacingUnderscores
            guard let policy = OutboundPolicy(rawValue: normalized) else {
                throw ConfigurationError("--outbound-policy must be allow-any or registry-only, got '\(v)'")
            }
            config.outboundPolicy = policy
        case "sampling":
            guard let percent = Double(v.hasSuffix("%") ? String(v.dropLast()) : v), (0...100).contains(percent) else {
                throw ConfigurationError("--sampling must be a percentage between 0 and 100, got '\(v)'")
            }
            config.samplingPercent = (percent * 100).rounded() / 100
        case "infer-parent":
            switch v.lowercased() {
            case "true", "yes", "on", "1", "": config.inferParent = true
            case "false", "no", "off", "0": config.inferParent = false
            default: throw ConfigurationError("--infer-parent takes true or false, got '\(v)'")
            }
        case "propagation":
            guard let formats = PropagationFormat.parseList(v) else {
                throw ConfigurationError("--propagation takes a comma list of w3c, b3multi, b3single, sw8; got '\(v)'")
            }
            config.propagation = formats
        case "health-check-path":
            // A comma list replaces the defaults; "" or "none" disables health-check detection.
            if v.isEmpty || v == "none" { config.healthCheckPaths = []; return }
            let paths = v.split(separator: ",").map { String($0).trimmed }.filter { !$0.isEmpty }
            for p in paths where !p.hasPrefix("/") { throw ConfigurationError("health-check path must start with '/', got '\(p)'") }
            config.healthCheckPaths = paths
        case "retry-on-status":
            // A comma list of statuses; "" or "none" turns status retries off.
            if v.isEmpty || v == "none" { config.retryOnStatus = []; return }
            var codes: [Int] = []
            for item in v.split(separator: ",") {
                let text = String(item).trimmed
                guard let code = Int(text), (500...599).contains(code) else {
                    throw ConfigurationError("--retry-on-status takes a comma list of 5xx statuses or 'none', got '\(text)'")
                }
                if !codes.contains(code) { codes.append(code) }
            }
            config.retryOnStatus = codes
        case "max-span-names": config.maxSpanNames = try count(v, option)
        case "route-template":
            let template = try RouteTemplate(v)
            if !config.routeTemplates.contains(template) { config.routeTemplates.append(template) }
        case "custom-tag":
            let tag = try CustomTag.parse(v, environment: environment)
            config.customTags.removeAll { $0.name == tag.name }
            config.customTags.append(tag)
        case "exporter":
            guard ["zipkin", "zipkin-proto", "otlp", "otlp-grpc", "none"].contains(v.lowercased()) else {
                throw ConfigurationError("--exporter must be zipkin, zipkin-proto, otlp, otlp-grpc or none, got '\(v)'")
            }
            config.exporter.kind = v.lowercased()
        case "collector":
            guard v.hasPrefix("http://") || v.hasPrefix("https://") || v.hasPrefix("grpc://") else {
                throw ConfigurationError("--collector must be an http:// URL (or grpc://host:4317 for OTLP/gRPC), got '\(v)'")
            }
            config.exporter.endpoint = v
        case "export-batch-size":
            guard let n = Int(v), (1...100_000).contains(n) else {
                throw ConfigurationError("--export-batch-size must be 1...100000 spans, got '\(v)'")
            }
            config.exporter.batchSize = n
        case "export-flush-interval": config.exporter.flushIntervalMillis = Int(try duration(v, option, allowZero: false))
        case "connect-timeout": config.connectTimeoutMillis = try duration(v, option, allowZero: false)
        case "request-timeout": config.requestTimeoutMillis = try duration(v, option, allowZero: true)
        case "per-try-timeout": config.perTryTimeoutMillis = try duration(v, option, allowZero: true)
        case "header-timeout": config.headerTimeoutMillis = try duration(v, option, allowZero: false)
        case "idle-timeout": config.idleTimeoutMillis = try duration(v, option, allowZero: false)
        case "drain-timeout": config.drainTimeoutMillis = try duration(v, option, allowZero: true)
        case "max-retries": config.maxRetries = try count(v, option)
        case "retry-budget-percent":
            guard let p = Double(v), (0...100).contains(p) else { throw ConfigurationError("--retry-budget-percent must be 0...100, got '\(v)'") }
            config.retryBudgetPercent = p
        case "min-retry-concurrency": config.minRetryConcurrency = try count(v, option)
        case "max-connections": config.maxConnections = try count(v, option)
        case "max-pending-requests": config.maxPendingRequests = try count(v, option)
        case "max-idle-per-upstream": config.maxIdlePerUpstream = try count(v, option)
        case "max-downstream-connections": config.maxDownstreamConnections = try count(v, option)
        case "max-header-bytes": config.maxHeaderBytes = try count(v, option)
        case "threads": config.threads = try count(v, option)
        case "capture", "inbound-capture-port", "outbound-capture-port", "health-port", "protocol-detection-timeout":
            try applyCapture(option, v, to: &config)
        case _ where balancingOptions.contains(option):
            try applyBalancing(option, v, to: &config)
        case "log-level":
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(v) else {
                throw ConfigurationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
            }
            config.logLevel = v
        default:
            throw ConfigurationError("unknown option '\(option)'")
        }
    }

    /// Applies a YAML document whose keys mirror the flags. Lists are allowed for repeatable keys;
    /// `upstream` and `route` also accept a map (`upstream: {backend: "127.0.0.1:15006"}`).
    public static func applyYAML(_ text: String, to config: inout SidecarConfiguration, environment: [String: String] = [:]) throws(ConfigurationError) {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError("config file is not valid YAML: \(error)")
        }
        guard let root else { return }
        guard let map = root as? [String: Any] else { throw ConfigurationError("config file must be a YAML mapping of option names to values") }
        for key in map.keys.sorted() {
            let option = key.lowercased().replacingUnderscores
            guard knownOptions.contains(option) else { throw ConfigurationError("config file: unknown key '\(key)'") }
            let value = map[key]
            if let list = value as? [Any] {
                if !repeatable.contains(option) && !Self.listOptions.contains(option) {
                    throw ConfigurationError("config file: '\(key)' takes one value, not a list")
                }
                if Self.listOptions.contains(option) {
                    try apply(option, list.map(scalarText).joined(separator: ","), to: &config, environment: environment)
                } else {
                    for item in list { try apply(option, scalarText(item), to: &config, environment: environment) }
                }
            } else if let nested = value as? [String: Any], option == "upstream" || option == "route" || option == "custom-tag" {
                for name in nested.keys.sorted() {
                    // `backend: [127.0.0.1:9001, 127.0.0.1:9002]`: one upstream, several endpoints.
                    let text = (nested[name] as? [Any]).map { $0.map(scalarText).joined(separator: ",") } ?? scalarText(nested[name] as Any)
                    try apply(option, "\(name)=\(text)", to: &config, environment: environment)
                }
            } else if let nested = value as? [String: Any], option == "exporter" {
                for name in nested.keys.sorted() {
                    let sub = name.lowercased().replacingUnderscores
                    let text = scalarText(nested[name] as Any)
                    switch sub {
                    case "kind", "type": try apply("exporter", text, to: &config, environment: environment)
                    case "endpoint", "url", "collector": try apply("collector", text, to: &config, environment: environment)
                    case "batch-size": try apply("export-batch-size", text, to: &config, environment: environment)
                    case "flush-interval": try apply("export-flush-interval", text, to: &config, environment: environment)
                    default: throw ConfigurationError("config file: unknown exporter key '\(name)'")
                    }
                }
            } else {
                try apply(option, scalarText(value as Any), to: &config, environment: environment)
            }
        }
    }

    /// A registry file: a YAML map of service name to `HOST:PORT` (optionally under `upstreams:`).
    public static func applyRegistry(_ text: String, to config: inout SidecarConfiguration) throws(ConfigurationError) {
        let root: Any?
        do {
            root = try Yams.load(yaml: text)
        } catch {
            throw ConfigurationError("registry file is not valid YAML: \(error)")
        }
        guard var map = root as? [String: Any] else { throw ConfigurationError("registry file must map service names to HOST:PORT") }
        if let inner = map["upstreams"] as? [String: Any] { map = inner }
        for name in map.keys.sorted() {
            try apply("upstream", "\(name)=\(scalarText(map[name] as Any))", to: &config)
        }
    }

    private static func scalarText(_ value: Any) -> String {
        switch value {
        case let s as String: return s
        case let b as Bool: return b ? "true" : "false"
        case let i as Int: return String(i)
        case let d as Double: return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        default: return "\(value)"
        }
    }

    static func flag(_ v: String, _ option: String) throws(ConfigurationError) -> Bool {
        switch v.lowercased() {
        case "true", "yes", "on", "1", "": return true
        case "false", "no", "off", "0": return false
        default: throw ConfigurationError("--\(option) must be true or false, got '\(v)'")
        }
    }

    private static func nonEmpty(_ v: String, _ option: String) throws(ConfigurationError) -> String {
        guard !v.isEmpty else { throw ConfigurationError("--\(option) must not be empty") }
        return v
    }

    /// A host name or IP address. An IPv6 address may come bracketed, as it is written in URLs
    /// and in `--upstream NAME=[::1]:PORT`; the brackets are not part of the address.
    private static func host(_ v: String, _ option: String) throws(ConfigurationError) -> String {
        var h = try nonEmpty(v, option)
        if h.hasPrefix("[") && h.hasSuffix("]") { h = String(h.dropFirst().dropLast()) }
        guard !h.isEmpty, !h.contains(where: { $0 == "/" || $0 == "[" || $0 == "]" || $0.isWhitespace }) else {
            throw ConfigurationError("--\(option) must be a host name or IP address (no port or scheme), got '\(v)'")
        }
        return h
    }

    /// Port number; "off"/"none"/negative disable the listener (stored as -1).
    static func port(_ v: String, _ option: String) throws(ConfigurationError) -> Int {
        if v == "off" || v == "none" || v == "disabled" { return -1 }
        guard let p = Int(v), p <= 65535 else { throw ConfigurationError("--\(option) must be a port 0...65535 (or -1/off), got '\(v)'") }
        return p < 0 ? -1 : p
    }

    static func count(_ v: String, _ option: String) throws(ConfigurationError) -> Int {
        guard let n = Int(v), n >= 0 else { throw ConfigurationError("--\(option) must be a non-negative integer, got '\(v)'") }
        return n
    }

    /// `250ms`, `10s`, `2m`, `1h`; a bare number is seconds.
    public static func parseDurationMillis(_ v: String) -> Int64? {
        let units: [(String, Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for (suffix, factor) in units where v.hasSuffix(suffix) {
            let number = v.dropLast(suffix.count)
            // "ms" also ends with "s": only accept a number before the suffix.
            guard let n = Double(number), n >= 0, n.isFinite else { continue }
            return millis(n * factor)
        }
        guard let n = Double(v), n >= 0, n.isFinite else { return nil }
        return millis(n * 1000)
    }

    /// Refuses values beyond about 292 years instead of trapping on the conversion to Int64.
    private static func millis(_ value: Double) -> Int64? {
        guard value.isFinite, value < Double(Int64.max / 1_000_000) else { return nil }
        return Int64(value.rounded())
    }

    static func duration(_ v: String, _ option: String, allowZero: Bool) throws(ConfigurationError) -> Int64 {
        guard let ms = parseDurationMillis(v), allowZero || ms > 0 else {
            throw ConfigurationError("--\(option) must be a \(allowZero ? "" : "positive ")duration like 250ms, 10s or 2m, got '\(v)'")
        }
        return ms
    }
}

extension String {
    var replacingUnderscores: String { String(map { $0 == "_" ? "-" : $0 }) }
}
