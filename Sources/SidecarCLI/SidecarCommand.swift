import ArgumentParser
import Foundation
import Logging
import NIOPosix
import SidecarProxy
import TraceExport

public struct SidecarCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "sidecar",
        abstract: "Run the sidecar proxy: automatic spans, trace-header propagation and Istio metrics for every HTTP hop.",
        discussion: """
            Listeners: inbound (to the local app, SERVER spans), outbound (an HTTP forward proxy: point \
            HTTP_PROXY at it; CLIENT spans), gateway (edge proxy, root spans). With --capture, inbound and \
            outbound capture listeners serve what `meshtrace iptables` redirects, apps unchanged. Port 0 picks a free port, \
            -1 (or "off") disables a listener; the first log line prints every address. Every flag has a \
            YAML form in --config FILE with the same name and text (flags given on the command line win). \
            SIGTERM drains in-flight requests and flushes spans.
            """
    )

    public init() {}

    @Option(name: .customLong("config"), help: "YAML file whose keys mirror these flags.")
    var configFile: String?

    @Option(name: .customLong("service"), help: "This workload's service name (default: unknown).")
    var service: String?
    @Option(name: .customLong("host"), help: "Address the data-plane and metrics listeners bind to (default 127.0.0.1). Admin is always loopback.")
    var host: String?
    @Option(name: .customLong("inbound-port"), parsing: .unconditional, help: "Inbound listener (default 15006); runs when --app-port is given.")
    var inboundPort: String?
    @Option(name: .customLong("app-port"), help: "The local application's port behind the inbound listener.")
    var appPort: String?
    @Option(name: .customLong("app-host"), help: "The local application's host (default 127.0.0.1).")
    var appHost: String?
    @Option(name: .customLong("outbound-port"), parsing: .unconditional, help: "Outbound forward-proxy listener (default 15001).")
    var outboundPort: String?
    @Option(name: .customLong("gateway-port"), parsing: .unconditional, help: "Gateway listener (off unless given); needs --route.")
    var gatewayPort: String?
    @Option(name: .customLong("route"), help: "Gateway route PREFIX=SERVICE (repeatable).")
    var route: [String] = []
    @Option(name: .customLong("metrics-port"), parsing: .unconditional, help: "Prometheus metrics at /stats/prometheus (default 15090).")
    var metricsPort: String?
    @Option(name: .customLong("admin-port"), parsing: .unconditional, help: "Admin (/config_dump, /ready, /stats) on loopback (default 15000).")
    var adminPort: String?
    @Option(name: .customLong("upstream"), help: "Upstream service NAME=HOST:PORT of its inbound sidecar, or NAME=HOST:PORT,HOST:PORT,... for several replicas (repeatable).")
    var upstream: [String] = []
    @Option(name: .customLong("registry"), help: "YAML file mapping service names to HOST:PORT.")
    var registry: String?
    @Option(name: .customLong("outbound-policy"), help: "allow-any (pass unknown hosts through) or registry-only (502 NR).")
    var outboundPolicy: String?
    @Option(name: .customLong("sampling"), help: "Trace sampling percentage 0-100 (default 100).")
    var sampling: String?
    @Option(name: .customLong("propagation"), help: "Formats injected: comma list of w3c, b3multi, b3single, sw8 (default w3c,b3multi; sw8 is read only when listed).")
    var propagation: String?
    @Flag(name: .customLong("infer-parent"), help: "Link outbound calls without trace context to the one inbound request in flight (never guesses when several are).")
    var inferParent = false
    @Option(name: .customLong("health-check-path"), help: "Comma list of paths not traced (default /healthz,/readyz,/health; 'none' for none).")
    var healthCheckPath: String?
    @Option(name: .customLong("custom-tag"), help: "Span tag NAME=literal:VALUE, NAME=env:VAR or NAME=header:NAME (repeatable).")
    var customTag: [String] = []
    @Option(name: .customLong("route-template"), help: "Span name route for matching paths, e.g. /api/reports/{id} ({name} is one segment; repeatable).")
    var routeTemplate: [String] = []

    @Option(name: .customLong("max-span-names"), help: "Distinct span names before new ones fold into METHOD /prefix/* (default 500; 0: no cap and no id learning).")
    var maxSpanNames: String?

    @Option(name: .customLong("exporter"), help: "Span export format: zipkin (v2 JSON), zipkin-proto (v2 proto3, smaller and cheaper), otlp (OTLP/HTTP), otlp-grpc (OTLP/gRPC, one kept HTTP/2 connection) or none (default: from the collector URL: …/v1/traces is otlp, grpc://host:4317 otlp-grpc).")
    var exporter: String?
    @Option(name: .customLong("collector"), help: "Collector URL, e.g. http://127.0.0.1:9411 (Zipkin), http://127.0.0.1:4318 (OTLP/HTTP) or grpc://127.0.0.1:4317 (OTLP/gRPC).")
    var collector: String?
    @Option(name: .customLong("export-batch-size"), help: "Spans per export request at most (default 512).")
    var exportBatchSize: String?
    @Option(name: .customLong("export-flush-interval"), help: "Send a partial batch after this long (default 1s).")
    var exportFlushInterval: String?
    @Option(name: .customLong("connect-timeout"), help: "Upstream connect timeout (default 10s).")
    var connectTimeout: String?
    @Option(name: .customLong("request-timeout"), help: "Upstream request timeout, 0 = none (default 15s). An HTTP/2 (gRPC) call has it until its response headers arrive; grpc-timeout bounds the whole call.")
    var requestTimeout: String?
    @Option(name: .customLong("per-try-timeout"), help: "Time each attempt may wait for its response head; expiry retries an outbound request (default 0 = none, as Istio).")
    var perTryTimeout: String?
    @Option(name: .customLong("max-retries"), help: "Retries per request, on connect failure and on --retry-on-status (default 2).")
    var maxRetries: String?
    @Option(name: .customLong("retry-on-status"), help: "Upstream statuses to retry outbound requests on (bodies up to 64 KiB): a comma list, or none (default 503).")
    var retryOnStatus: String?
    @Option(name: .customLong("retry-budget-percent"), help: "Concurrent retries as a share of active requests (default 20).")
    var retryBudgetPercent: String?
    @Option(name: .customLong("min-retry-concurrency"), help: "Retries always allowed concurrently (default 3).")
    var minRetryConcurrency: String?
    @Option(name: .customLong("max-connections"), help: "Circuit breaker: connections per upstream (default 1024).")
    var maxConnections: String?
    @Option(name: .customLong("max-pending-requests"), help: "Circuit breaker: requests waiting for a connection (default 1024).")
    var maxPendingRequests: String?
    @Option(name: .customLong("max-idle-per-upstream"), help: "Idle keep-alive connections per upstream per thread (default 64).")
    var maxIdlePerUpstream: String?
    @Option(name: .customLong("lb-policy"), help: "Balancer for upstreams with several endpoints: least-request (two random choices) or round-robin (default least-request).")
    var lbPolicy: String?
    @Option(name: .customLong("outlier-consecutive-5xx"), help: "Eject an endpoint after this many 5xx answers or failures in a row, 0 = off (default 5).")
    var outlierConsecutive5xx: String?
    @Option(name: .customLong("outlier-consecutive-gateway-failure"), help: "Eject an endpoint after this many 502/503/504 answers or connect failures in a row, 0 = off (default 5).")
    var outlierConsecutiveGatewayFailure: String?
    @Option(name: .customLong("outlier-base-ejection-time"), help: "An ejected endpoint stays out this long times its ejection count (default 30s).")
    var outlierBaseEjectionTime: String?
    @Option(name: .customLong("outlier-max-ejection-time"), help: "Longest ejection (default 300s).")
    var outlierMaxEjectionTime: String?
    @Option(name: .customLong("outlier-max-ejection-percent"), help: "Most endpoints ejected at once, in percent; one can always be (default 10).")
    var outlierMaxEjectionPercent: String?
    @Option(name: .customLong("max-downstream-connections"), help: "Cap on client connections (default 10000; lowered at start to what the open-file limit can pair with upstream connections).")
    var maxDownstreamConnections: String?
    @Option(name: .customLong("max-header-bytes"), help: "Largest request header block; larger gets 431 (default 65536).")
    var maxHeaderBytes: String?
    @Option(name: .customLong("header-timeout"), help: "Time to send a request head once started (default 10s).")
    var headerTimeout: String?
    @Option(name: .customLong("idle-timeout"), help: "Idle client connection timeout (default 300s).")
    var idleTimeout: String?
    @Option(name: .customLong("drain-timeout"), help: "On SIGTERM, time in-flight requests get to finish (default 10s).")
    var drainTimeout: String?
    @Option(name: .customLong("threads"), help: "Event-loop threads (default 1, like a linkerd2-proxy sidecar; more for a busy gateway).")
    var threads: String?

    @Flag(name: .customLong("capture"), help: "Transparent capture: serve the connections `meshtrace iptables` redirects (Linux; run as the rules' --proxy-uid).")
    var capture = false
    @Option(name: .customLong("inbound-capture-port"), parsing: .unconditional, help: "With --capture: the inbound capture listener, all addresses (default 15006).")
    var inboundCapturePort: String?
    @Option(name: .customLong("outbound-capture-port"), parsing: .unconditional, help: "With --capture: the outbound capture listener, all addresses (default 15001).")
    var outboundCapturePort: String?
    @Option(name: .customLong("health-port"), parsing: .unconditional, help: "GET /healthz/ready on all addresses (default 15021 with --capture, off otherwise).")
    var healthPort: String?
    @Option(name: .customLong("protocol-detection-timeout"), help: "With --capture: a connection silent this long is relayed as plain TCP (default 100ms).")
    var protocolDetectionTimeout: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    /// (option, value) pairs in command-line order of kind; repeatable ones may appear several times.
    private var flagPairs: [(String, String)] {
        var pairs: [(String, String)] = []
        func add(_ name: String, _ value: String?) { if let value { pairs.append((name, value)) } }
        add("service", service); add("host", host); add("inbound-port", inboundPort); add("app-port", appPort)
        add("app-host", appHost); add("outbound-port", outboundPort); add("gateway-port", gatewayPort)
        add("metrics-port", metricsPort); add("admin-port", adminPort); add("registry", registry)
        add("outbound-policy", outboundPolicy); add("sampling", sampling); add("propagation", propagation)
        add("health-check-path", healthCheckPath); add("exporter", exporter); add("collector", collector)
        add("export-batch-size", exportBatchSize); add("export-flush-interval", exportFlushInterval)
        add("connect-timeout", connectTimeout); add("request-timeout", requestTimeout); add("per-try-timeout", perTryTimeout); add("max-retries", maxRetries)
        add("retry-on-status", retryOnStatus)
        add("retry-budget-percent", retryBudgetPercent); add("min-retry-concurrency", minRetryConcurrency)
        add("max-connections", maxConnections); add("max-pending-requests", maxPendingRequests)
        add("max-idle-per-upstream", maxIdlePerUpstream); add("max-downstream-connections", maxDownstreamConnections)
        add("max-header-bytes", maxHeaderBytes); add("header-timeout", headerTimeout); add("idle-timeout", idleTimeout)
        add("drain-timeout", drainTimeout); add("log-level", logLevel); add("threads", threads)
        add("max-span-names", maxSpanNames)
        add("lb-policy", lbPolicy); add("outlier-consecutive-5xx", outlierConsecutive5xx)
        add("outlier-consecutive-gateway-failure", outlierConsecutiveGatewayFailure)
        add("outlier-base-ejection-time", outlierBaseEjectionTime); add("outlier-max-ejection-time", outlierMaxEjectionTime)
        add("outlier-max-ejection-percent", outlierMaxEjectionPercent)
        if inferParent { pairs.append(("infer-parent", "true")) }
        if capture { pairs.append(("capture", "true")) }
        add("inbound-capture-port", inboundCapturePort); add("outbound-capture-port", outboundCapturePort)
        add("health-port", healthPort); add("protocol-detection-timeout", protocolDetectionTimeout)
        for v in route { pairs.append(("route", v)) }
        for v in upstream { pairs.append(("upstream", v)) }
        for v in customTag { pairs.append(("custom-tag", v)) }
        for v in routeTemplate { pairs.append(("route-template", v)) }
        return pairs
    }

    /// Defaults, then the YAML file, then the registry file, then flags.
    func buildConfiguration() throws -> SidecarConfiguration {
        let environment = ProcessInfo.processInfo.environment
        var config = SidecarConfiguration()
        do {
            if let configFile {
                let text = try String(contentsOfFile: configFile, encoding: .utf8)
                try ConfigurationLoader.applyYAML(text, to: &config, environment: environment)
            }
            let flagRegistry = registry
            for (name, value) in flagPairs where name != "registry" {
                try ConfigurationLoader.apply(name, value, to: &config, environment: environment)
            }
            if let path = flagRegistry ?? config.registryFile {
                config.registryFile = path
                let text = try String(contentsOfFile: path, encoding: .utf8)
                // Flags and the config file win over the registry for the same name.
                var fromRegistry = SidecarConfiguration()
                try ConfigurationLoader.applyRegistry(text, to: &fromRegistry)
                for u in fromRegistry.upstreams where config.upstream(named: u.name) == nil { config.upstreams.append(u) }
            }
            try config.validate()
        } catch let error as ConfigurationError {
            throw ValidationError(error.description)
        }
        return config
    }

    public func validate() throws {
        _ = try buildConfiguration()
    }

    public func run() async throws {
        MemoryTuning.applyForSidecar()
        var config = try buildConfiguration()
        let identity = Self.kubernetesIdentity(&config, environment: ProcessInfo.processInfo.environment)
        let logger = bootstrapLogging(config.logLevel, label: "meshtrace.sidecar")
        let explicit = config.maxDownstreamConnections != SidecarConfiguration().maxDownstreamConnections
        config.maxDownstreamConnections = FileDescriptorBudget.apply(to: config.maxDownstreamConnections, explicit: explicit, logger: logger)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, min(config.threads, 64)))
        // Span export gets its own loop: sending a batch (hundreds of KB) on the proxy's loop
        // would hold up the requests queued behind it, which showed as tail latency.
        let exportGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let box = ConfigurationBox(config)
        let telemetry = Self.makeTelemetry(config, identity: identity, box: box, group: exportGroup, logger: logger)
        let server = SidecarServer(configuration: box, telemetry: telemetry, logger: logger, group: group)
        if let sidecarTelemetry = telemetry as? SidecarTelemetry { sidecarTelemetry.start() }
        do {
            try await server.run()
        } catch {
            await telemetry.flush()
            try? await group.shutdownGracefully()
            try? await exportGroup.shutdownGracefully()
            throw error
        }
        try? await group.shutdownGracefully()
        try? await exportGroup.shutdownGracefully()
    }

    /// The real telemetry (spans to the collector, Istio metrics).
    static func makeTelemetry(
        _ config: SidecarConfiguration, identity: WorkloadIdentity? = nil, box: ConfigurationBox, group: MultiThreadedEventLoopGroup, logger: Logger
    ) -> any ProxyTelemetry {
        // No --exporter: the URL's path decides (`…/v1/traces` is OTLP), as the flag's help says.
        let explicit = config.exporter.kind.flatMap(SpanExportTarget.Kind.init(rawValue:))
        var target = SpanExportTarget.disabled
        if let endpoint = config.exporter.endpoint, explicit != SpanExportTarget.Kind.none {
            var url = endpoint
            let afterScheme = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
            // "http://host:port" or "http://host:port/": add the format's standard path (gRPC has none).
            let isGRPC = explicit == .otlpGRPC || (explicit == nil && url.lowercased().hasPrefix("grpc://"))
            if !isGRPC, afterScheme.count < 4 || afterScheme[3].isEmpty {
                if url.hasSuffix("/") { url.removeLast() }
                url += explicit == .otlp ? "/v1/traces" : "/api/v2/spans"
            }
            target = SpanExportTarget.resolve(url: url, explicit: explicit) ?? SpanExportTarget(kind: explicit ?? .zipkin, url: url)
        }
        let telemetryConfig = TelemetryConfiguration(
            serviceName: config.serviceName, namespace: identity?.namespace ?? "default", exporter: target,
            naming: SpanNaming(
                templates: RouteTemplates(config.routeTemplates),
                cardinality: config.maxSpanNames > 0 ? RouteCardinality(maxNames: config.maxSpanNames) : nil),
            maxBatchSpans: config.exporter.batchSize,
            flushIntervalSeconds: Double(config.exporter.flushIntervalMillis) / 1000, identity: identity)
        return SidecarTelemetry(configuration: telemetryConfig, group: group, logger: logger, samplingPercent: { box.snapshot.config.samplingPercent })
    }
}
