import TraceModel

/// `mesh.yaml`: the services of a local mesh, its gateway, telemetry and collector.
/// See examples/mesh.yaml for an annotated example.
public struct MeshFile: Sendable, Equatable {
    public var name: String
    public var services: [ServiceSpec]
    public var gateway: GatewaySpec?
    public var telemetry: TelemetrySpec
    public var collector: CollectorSpec
    /// Run Prometheus beside the mesh (`prometheus: true`), scraping every sidecar; nil: don't.
    public var prometheus: PrometheusSpec?
    /// How apps' traffic reaches their sidecars: `HTTP_PROXY` and `<NAME>_URL` (off), or
    /// `capture: netns`, each service in a network namespace with capture rules (root, Linux).
    public var capture: CaptureMode = .off

    public init(name: String = "mesh", services: [ServiceSpec], gateway: GatewaySpec? = nil,
                telemetry: TelemetrySpec = TelemetrySpec(), collector: CollectorSpec = CollectorSpec(), prometheus: PrometheusSpec? = nil) {
        self.name = name
        self.services = services
        self.gateway = gateway
        self.telemetry = telemetry
        self.collector = collector
        self.prometheus = prometheus
    }

    public func service(named name: String) -> ServiceSpec? { services.first { $0.name == name } }
}

public enum CaptureMode: String, Sendable, Equatable {
    case off
    case netns
}

public struct ServiceSpec: Sendable, Equatable {
    public var name: String
    /// Program to run; `${PORT}` and `${MESHTRACE}` in it and in `args` are substituted.
    public var command: String
    public var args: [String]
    public var env: [String: String]
    public var workingDir: String?
    /// The port the app listens on; 0 = pick a free one and pass it as `$PORT`.
    public var port: Int
    /// Services this one calls; each gets an outbound route and a `<NAME>_URL` variable.
    public var upstreams: [String]
    /// Path polled for health through the app port, or `tcp` (`tcpHealth`): healthy once the
    /// port accepts a connection, for apps that do not answer HTTP/1 (gRPC servers).
    public var healthPath: String?
    public static let tcpHealth = "tcp"
    /// Processes of this service `meshtrace up` runs, each on its own port behind its own
    /// inbound sidecar; callers balance over all of them (`instanceNames`).
    public var replicas: Int

    /// The name of each process: the service's own for one replica, else `NAME-1` … `NAME-N`
    /// (in logs, `meshtrace status` and `proxy-config`).
    public var instanceNames: [String] {
        replicas <= 1 ? [name] : (1...replicas).map { "\(name)-\($0)" }
    }
    /// Route templates naming this service's spans (`/api/reports/{id}`), see `RouteTemplates`.
    public var routes: [String] = []
    /// The sidecar's Prometheus listener; 0 picks a free one (found through discovery).
    public var metricsPort = 0

    public init(name: String, command: String, args: [String] = [], env: [String: String] = [:], workingDir: String? = nil,
                port: Int = 0, upstreams: [String] = [], healthPath: String? = "/healthz", replicas: Int = 1) {
        self.name = name
        self.command = command
        self.args = args
        self.env = env
        self.workingDir = workingDir
        self.port = port
        self.upstreams = upstreams
        self.healthPath = healthPath
        self.replicas = replicas
    }
}

public struct GatewaySpec: Sendable, Equatable {
    public var port: Int
    /// The gateway's Prometheus listener; 0 picks a free one.
    public var metricsPort = 0
    /// Path prefix -> service, longest prefix wins.
    public var routes: [(prefix: String, service: String)]

    public init(port: Int = 8080, routes: [(prefix: String, service: String)]) {
        self.port = port
        self.routes = routes
    }

    public static func == (a: GatewaySpec, b: GatewaySpec) -> Bool {
        a.port == b.port && a.metricsPort == b.metricsPort && a.routes.map(\.prefix) == b.routes.map(\.prefix)
            && a.routes.map(\.service) == b.routes.map(\.service)
    }
}

/// The settings that change live, without restarting anything.
public struct TelemetrySpec: Sendable, Equatable {
    public var samplingPercent: Double
    public var propagation: [PropagationFormat]
    /// name -> `literal:VALUE`, `env:VAR` or `header:NAME`.
    public var customTags: [String: String]
    /// Paths that are not traced (health checks).
    public var excludePaths: [String]
    /// zipkin or otlp, toward the collector.
    public var exporter: String
    /// Sidecars link outbound calls without trace context to the one inbound request in flight
    /// (`telemetry.inferParent`, see `ParentInference`).
    public var inferParent = false

    public init(samplingPercent: Double = 100, propagation: [PropagationFormat] = [.w3c, .b3multi], customTags: [String: String] = [:],
                excludePaths: [String] = ["/healthz", "/readyz", "/health"], exporter: String = "zipkin") {
        self.samplingPercent = samplingPercent
        self.propagation = propagation
        self.customTags = customTags
        self.excludePaths = excludePaths
        self.exporter = exporter
    }
}

public struct CollectorSpec: Sendable, Equatable {
    /// nil = run the embedded collector; else the Zipkin (`…/api/v2/spans`) or OTLP (`…/v1/traces`) URL.
    public var url: String?
    public var queryPort: Int
    public var zipkinPort: Int
    public var otlpPort: Int
    /// OTLP/gRPC (4317); -1 turns it off. Apps get it as OTEL_EXPORTER_OTLP_ENDPOINT.
    public var otlpGRPCPort: Int
    public var adminPort: Int
    public var dataDir: String?

    public init(
        url: String? = nil, queryPort: Int = 16686, zipkinPort: Int = 9411, otlpPort: Int = 4318, otlpGRPCPort: Int = 4317,
        adminPort: Int = 14269, dataDir: String? = nil
    ) {
        self.otlpGRPCPort = otlpGRPCPort
        self.url = url
        self.queryPort = queryPort
        self.zipkinPort = zipkinPort
        self.otlpPort = otlpPort
        self.adminPort = adminPort
        self.dataDir = dataDir
    }
}

/// `prometheus:` in mesh.yaml (`true`, or a mapping with `port`), or `up --prometheus`.
public struct PrometheusSpec: Sendable, Equatable {
    /// Its web and API port; 0 picks a free one.
    public var port: Int
    /// How often it scrapes and re-reads the targets.
    public var scrapeInterval: String

    public init(port: Int = 0, scrapeInterval: String = "5s") {
        self.port = port
        self.scrapeInterval = scrapeInterval
    }
}
