import TraceModel

/// The actual addresses the listeners bound (ports may have been 0).
public struct BoundAddresses: Sendable, Equatable {
    public var inbound: String?
    public var outbound: String?
    public var gateway: String?
    public var metrics: String?
    public var admin: String?
    public var inboundCapture: String?
    public var outboundCapture: String?
    public var health: String?

    public init() {}

    /// The log line tests parse: `meshtrace sidecar listening inbound=127.0.0.1:15006 outbound=… metrics=… admin=…`.
    public func listeningLine(service: String) -> String {
        var parts = ["meshtrace sidecar listening"]
        parts.append("inbound=\(inbound ?? "off")")
        parts.append("outbound=\(outbound ?? "off")")
        parts.append("gateway=\(gateway ?? "off")")
        parts.append("metrics=\(metrics ?? "off")")
        parts.append("admin=\(admin ?? "off")")
        if let inboundCapture, let outboundCapture {
            parts.append("inbound_capture=\(inboundCapture)")
            parts.append("outbound_capture=\(outboundCapture)")
        }
        if let health { parts.append("health=\(health)") }
        parts.append("service=\(service)")
        return parts.joined(separator: " ")
    }
}

/// `/config_dump`: the effective configuration as JSON.
public enum ConfigDump {
    public static func render(_ config: SidecarConfiguration, addresses: BoundAddresses, inference: ParentInference? = nil,
                              spanNames: RouteCardinality.Snapshot? = nil) -> String {
        var o = JSONObjectWriter()
        o.string("service", config.serviceName)

        var listeners: [String] = []
        func listener(_ name: String, enabled: Bool, configuredPort: Int?, address: String?, extra: (inout JSONObjectWriter) -> Void = { _ in }) {
            var l = JSONObjectWriter()
            l.string("name", name)
            l.bool("enabled", enabled)
            if let configuredPort { l.int("configured_port", configuredPort) }
            if let address { l.string("address", address) }
            extra(&l)
            listeners.append(l.finish())
        }
        listener("inbound", enabled: config.inboundEnabled, configuredPort: config.inboundPort, address: addresses.inbound) { l in
            if let app = config.appPort {
                l.string("app", "\(config.appHost):\(app)")
                l.string("cluster", "inbound|\(app)||")
            }
        }
        listener("outbound", enabled: config.outboundEnabled, configuredPort: config.outboundPort, address: addresses.outbound) { l in
            l.string("policy", config.outboundPolicy.rawValue)
        }
        listener("gateway", enabled: config.gatewayEnabled, configuredPort: config.gatewayPort, address: addresses.gateway) { l in
            l.raw("routes", "[" + config.routes.map { r in
                var w = JSONObjectWriter()
                w.string("prefix", r.prefix)
                w.string("service", r.service)
                return w.finish()
            }.joined(separator: ",") + "]")
        }
        listener("metrics", enabled: config.metricsPort >= 0, configuredPort: config.metricsPort, address: addresses.metrics) { l in
            l.string("path", "/stats/prometheus")
        }
        listener("admin", enabled: config.adminPort >= 0, configuredPort: config.adminPort, address: addresses.admin)
        listener("inbound_capture", enabled: config.capture.enabled, configuredPort: config.capture.inboundPort, address: addresses.inboundCapture)
        listener("outbound_capture", enabled: config.capture.enabled, configuredPort: config.capture.outboundPort, address: addresses.outboundCapture)
        listener("health", enabled: config.capture.effectiveHealthPort != nil, configuredPort: config.capture.effectiveHealthPort, address: addresses.health)
        o.raw("listeners", "[" + listeners.joined(separator: ",") + "]")

        o.raw("upstreams", "[" + config.upstreams.map { u in
            var w = JSONObjectWriter()
            w.string("name", u.name)
            w.string("address", "\(u.host):\(u.port)")
            if u.endpoints.count > 1 {
                w.raw("endpoints", "[" + u.endpoints.map { "\"" + $0.address + "\"" }.joined(separator: ",") + "]")
                w.string("lb_policy", config.loadBalancer.rawValue)
            }
            return w.finish()
        }.joined(separator: ",") + "]")
        if let registry = config.registryFile { o.string("registry", registry) }

        var sampling = JSONObjectWriter()
        sampling.double("percent", config.samplingPercent)
        sampling.raw("health_check_paths", "[" + config.healthCheckPaths.map(JSONText.quote).joined(separator: ",") + "]")
        o.raw("sampling", sampling.finish())
        o.raw("propagation", "[" + config.propagation.map { JSONText.quote($0.rawValue) }.joined(separator: ",") + "]")
        var parent = JSONObjectWriter()
        parent.bool("enabled", config.inferParent)
        if let counts = inference?.counts {
            parent.int("inferred", counts.inferred)
            parent.int("ambiguous", counts.ambiguous)
            parent.int("none", counts.none)
        }
        o.raw("parent_inference", parent.finish())
        o.raw("route_templates", "[" + config.routeTemplates.map { JSONText.quote($0.description) }.joined(separator: ",") + "]")
        if let spanNames {
            var names = JSONObjectWriter()
            names.int("distinct", spanNames.names)
            names.int("folded", spanNames.folded)
            names.raw("learned", "[" + spanNames.learned.map(JSONText.quote).joined(separator: ",") + "]")
            o.raw("span_names", names.finish())
        }
        o.raw("custom_tags", "[" + config.customTags.map { t in
            var w = JSONObjectWriter()
            w.string("name", t.name)
            w.string("source", t.specText)
            return w.finish()
        }.joined(separator: ",") + "]")

        var exporter = JSONObjectWriter()
        exporter.string("kind", config.exporter.effectiveKind)
        if let endpoint = config.exporter.endpoint { exporter.string("endpoint", endpoint) } else { exporter.raw("endpoint", "null") }
        exporter.int("batch_size", config.exporter.batchSize)
        exporter.int("flush_interval_ms", config.exporter.flushIntervalMillis)
        o.raw("exporter", exporter.finish())

        var policies = JSONObjectWriter()
        policies.string("outbound_policy", config.outboundPolicy.rawValue)
        policies.int("connect_timeout_ms", Int(config.connectTimeoutMillis))
        policies.int("request_timeout_ms", Int(config.requestTimeoutMillis))
        policies.int("per_try_timeout_ms", Int(config.perTryTimeoutMillis))
        policies.int("max_retries", config.maxRetries)
        policies.raw("retry_on_status", "[" + config.retryOnStatus.map(String.init).joined(separator: ",") + "]")
        policies.double("retry_budget_percent", config.retryBudgetPercent)
        policies.int("min_retry_concurrency", config.minRetryConcurrency)
        policies.int("max_connections", config.maxConnections)
        policies.int("max_pending_requests", config.maxPendingRequests)
        policies.int("max_idle_per_upstream", config.maxIdlePerUpstream)
        policies.int("max_downstream_connections", config.maxDownstreamConnections)
        policies.int("max_header_bytes", config.maxHeaderBytes)
        policies.int("header_timeout_ms", Int(config.headerTimeoutMillis))
        policies.int("idle_timeout_ms", Int(config.idleTimeoutMillis))
        policies.int("drain_timeout_ms", Int(config.drainTimeoutMillis))
        o.raw("policies", policies.finish())
        o.string("log_level", config.logLevel)
        return o.finish()
    }
}

/// Builds one JSON object by hand (no Foundation on the request path's module).
struct JSONObjectWriter {
    private var out = "{"
    private var first = true

    private mutating func key(_ k: String) {
        if !first { out += "," }
        first = false
        out += JSONText.quote(k) + ":"
    }

    mutating func string(_ k: String, _ v: String) { key(k); out += JSONText.quote(v) }
    mutating func int(_ k: String, _ v: Int) { key(k); out += String(v) }
    mutating func bool(_ k: String, _ v: Bool) { key(k); out += v ? "true" : "false" }
    mutating func double(_ k: String, _ v: Double) {
        key(k)
        out += v.isFinite ? (v == v.rounded() && abs(v) < 1e15 ? String(Int(v)) : String(v)) : "null"
    }
    mutating func raw(_ k: String, _ json: String) { key(k); out += json }
    func finish() -> String { out + "}" }
}
