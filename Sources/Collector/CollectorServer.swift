import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TailSampling
import TraceStorage
import UnixSignals

/// The addresses a running collector listens on; port 0 in the configuration becomes the
/// port the kernel picked.
public struct ListeningAddresses: Sendable, CustomStringConvertible {
    public var host: String
    public var zipkinPort: Int
    public var otlpHTTPPort: Int
    /// Nil when OTLP/gRPC is off.
    public var otlpGRPCPort: Int?
    /// SkyWalking agents' gRPC and HTTP report ports; nil when off.
    public var skywalkingGRPCPort: Int?
    public var skywalkingHTTPPort: Int?
    public var queryPort: Int
    public var adminPort: Int

    public var description: String {
        "zipkin=http://\(host):\(zipkinPort) otlp-http=http://\(host):\(otlpHTTPPort) "
            + (otlpGRPCPort.map { "otlp-grpc=\(host):\($0) " } ?? "")
            + (skywalkingGRPCPort.map { "skywalking-grpc=\(host):\($0) " } ?? "")
            + (skywalkingHTTPPort.map { "skywalking-http=http://\(host):\($0) " } ?? "")
            + "query=http://\(host):\(queryPort) admin=http://\(host):\(adminPort)"
    }
}

/// `meshtrace collector`: Zipkin, OTLP and SkyWalking ingest, Jaeger and Zipkin query APIs and an
/// admin port, over one durable store. Run it as a swift-service-lifecycle `Service`.
public final class CollectorServer: Service {
    public let configuration: CollectorConfiguration
    public let metrics: CollectorMetrics
    public let readiness = Readiness()
    private let logger: Logger
    private let gracefulShutdownSignals: [UnixSignal]
    private let onListening: @Sendable (ListeningAddresses) -> Void
    private let runningGroup = Mutex<ServiceGroup?>(nil)
    /// The tail-sampling policy in force, and the running pipeline to give a new one to.
    private let sampling: Mutex<(policy: SamplingPolicyFile?, pipeline: IngestPipeline?)>

    /// - Parameters:
    ///   - gracefulShutdownSignals: signals that drain and stop the collector (the CLI passes
    ///     SIGTERM and SIGINT; an embedding process leaves them to its own service group).
    ///   - onListening: called once, when every listener is bound.
    public init(
        configuration: CollectorConfiguration,
        logger: Logger,
        gracefulShutdownSignals: [UnixSignal] = [],
        onListening: @escaping @Sendable (ListeningAddresses) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.metrics = CollectorMetrics()
        self.logger = logger
        self.gracefulShutdownSignals = gracefulShutdownSignals
        self.onListening = onListening
        self.sampling = Mutex((configuration.samplingPolicy, nil))
    }

    /// Turns tail sampling on with `policy`, changes it, or (nil) turns it off, live: traces
    /// waiting for a decision are decided by the new policy (or, turning off, now). Throws,
    /// changing nothing, when a policy cannot be built.
    public func setSamplingPolicy(_ policy: SamplingPolicyFile?) throws(PolicyError) {
        if let policy { _ = try TailSampler<ContinuousClock.Instant>(configuration: policy.configuration) }
        let pipeline = sampling.withLock { s in
            s.policy = policy
            return s.pipeline
        }
        try pipeline?.tail.setPolicy(policy)
    }

    public func run() async throws {
        let config = configuration
        let store = try TraceStoreFactory.make(
            kind: config.storage, dataDirectory: config.dataDirectory, clickHouse: config.clickHouse, logger: logger)
        readiness.setStore(await store.isReady())  // before any listener: ingest must not race the first probe
        let queue = IngestQueue(store: store, capacitySpans: config.ingestQueueCapacitySpans, logger: logger)
        let body = IngestBody(maxWireBytes: config.maxRequestBodyBytes, maxDecodedBytes: config.maxDecompressedBodyBytes)
        let autocomplete = AutocompleteIndex(keys: config.autocompleteKeys)
        let tailMetrics = TailSamplingMetrics(factory: metrics.factory)
        let aggregate = REDAggregate()
        let spanMetrics = SpanMetrics()
        metrics.addExposition { spanMetrics.exposition() }
        let policy = sampling.withLock { $0.policy }
        let tail = try TailSamplingService(
            clock: ContinuousClock(), policy: policy, policyPath: config.samplingPolicyPath, queue: queue, metrics: tailMetrics,
            aggregate: aggregate, spanMetrics: spanMetrics, maxPendingWriteSpans: config.ingestQueueCapacitySpans, logger: logger)
        let pipeline = IngestPipeline(tail: tail, metrics: tailMetrics, logger: logger)
        sampling.withLock { $0.pipeline = pipeline }
        let ingestor = SpanIngestor(pipeline: pipeline, readiness: readiness, metrics: metrics, logger: logger, autocomplete: autocomplete)

        let zipkinRouter = Router()
        zipkinRouter.add(middleware: CORSMiddleware(allowOrigin: .all))
        ZipkinReceiver(body: body, ingestor: ingestor, metrics: metrics).register(on: zipkinRouter)
        ZipkinQueryAPI(store: store, autocomplete: autocomplete).register(on: zipkinRouter)

        let otlpRouter = Router()
        OTLPReceiver(body: body, ingestor: ingestor, metrics: metrics).register(on: otlpRouter)

        let skywalkingNotices = SkyWalkingNotices(logger: logger)
        let skywalkingRouter = Router()
        SkyWalkingHTTPReceiver(body: body, ingestor: ingestor, metrics: metrics, notices: skywalkingNotices).register(on: skywalkingRouter)

        let queryRouter = Router()
        queryRouter.add(middleware: CORSMiddleware(allowOrigin: .all))
        JaegerQueryAPI(store: store).register(on: queryRouter)
        GraphAPI(store: store, aggregate: aggregate).register(on: queryRouter)
        AnalysisAPI(store: store).register(on: queryRouter)  // propagation doctor, critical path
        MonitorAPI(store: store).register(on: queryRouter)  // RED metrics over time
        CompareAPI(store: store).register(on: queryRouter)  // trace diff, typical trace
        WebUI().register(on: queryRouter)

        let adminRouter = Router()
        AdminAPI(metrics: metrics, readiness: readiness).register(on: adminRouter)

        let grpcEnabled = config.otlpGRPCPort >= 0
        let skywalkingGRPCEnabled = config.skywalkingGRPCPort >= 0
        let skywalkingHTTPEnabled = config.skywalkingHTTPPort >= 0
        let bound = BoundPorts(
            expected: Set(
                ["zipkin", "otlp", "query", "admin"] + (grpcEnabled ? ["otlp_grpc"] : []) + (skywalkingGRPCEnabled ? ["skywalking_grpc"] : [])
                    + (skywalkingHTTPEnabled ? ["skywalking_http"] : [])))
        let announce: @Sendable ([String: Int]) -> Void = { [self] ports in
            let addresses = ListeningAddresses(
                host: config.host, zipkinPort: ports["zipkin"] ?? 0, otlpHTTPPort: ports["otlp"] ?? 0,
                otlpGRPCPort: ports["otlp_grpc"], skywalkingGRPCPort: ports["skywalking_grpc"], skywalkingHTTPPort: ports["skywalking_http"],
                queryPort: ports["query"] ?? 0, adminPort: ports["admin"] ?? 0)
            // The gRPC endpoint is written as SDKs take it (OTEL_EXPORTER_OTLP_ENDPOINT): http://
            // means plaintext, https:// TLS.
            let grpcScheme = config.otlpGRPCTLS == nil ? "http" : "https"
            self.logger.info(
                "meshtrace collector listening",
                metadata: [
                    "zipkin": "http://\(config.host):\(addresses.zipkinPort)/api/v2/spans",
                    "otlp_http": "http://\(config.host):\(addresses.otlpHTTPPort)/v1/traces",
                    "otlp_grpc": "\(addresses.otlpGRPCPort.map { "\(grpcScheme)://\(config.host):\($0)" } ?? "off")",
                    // As SkyWalking agents take them (SW_AGENT_COLLECTOR_BACKEND_SERVICES): host:port.
                    "skywalking_grpc": "\(addresses.skywalkingGRPCPort.map { "\(config.host):\($0)" } ?? "off")",
                    "skywalking_http": "\(addresses.skywalkingHTTPPort.map { "\(config.host):\($0)" } ?? "off")",
                    "query": "http://\(config.host):\(addresses.queryPort)",
                    "admin": "http://\(config.host):\(addresses.adminPort)",
                    "storage": "\(config.storage.rawValue)",
                    "data_dir": "\(config.storage == .sqlite ? config.dataDirectory ?? "-" : "-")",
                    "clickhouse": "\(config.storage == .clickhouse ? config.clickHouse?.url ?? "-" : "-")",
                ])
            self.readiness.set(true)
            self.onListening(addresses)
        }
        func app(_ name: String, _ router: Router<BasicRequestContext>, port: Int) -> some Service {
            Application(
                router: router,
                configuration: ApplicationConfiguration(address: .hostname(config.host, port: port), serverName: "meshtrace"),
                onServerRunning: { channel in
                    if let ports = bound.record(name, port: channel.localAddress?.port ?? port) { announce(ports) }
                },
                logger: Logger(label: "meshtrace.collector.\(name)", factory: { _ in self.quietHandler(name) })
            )
        }

        let ingestService = IngestService(
            queue: queue, store: store, metrics: metrics, configuration: config, readiness: readiness, logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: ingestService),
            // After the ingest service, so it stops first and writes what it keeps into the queue.
            .init(service: tail),
            .init(service: app("zipkin", zipkinRouter, port: config.zipkinPort)),
            .init(service: app("otlp", otlpRouter, port: config.otlpHTTPPort)),
        ]
        if grpcEnabled {
            let listener = GRPCListener(
                name: "OTLP/gRPC", host: config.host, port: config.otlpGRPCPort,
                services: [OTLPGRPCService(ingestor: ingestor, metrics: metrics)],
                limits: config.grpcLimits, tls: config.otlpGRPCTLS, logger: logger,
                onListening: { port in if let ports = bound.record("otlp_grpc", port: port) { announce(ports) } })
            services.append(.init(service: listener))
        }
        if skywalkingGRPCEnabled {
            // Its own listener on its own port, with SkyWalking's services (the OAP's 11800).
            let listener = GRPCListener(
                name: "SkyWalking gRPC", host: config.host, port: config.skywalkingGRPCPort,
                services: [
                    SkyWalkingGRPCService(ingestor: ingestor, metrics: metrics), SkyWalkingManagementService(notices: skywalkingNotices),
                ],
                limits: config.grpcLimits, tls: nil, logger: logger,
                onListening: { port in if let ports = bound.record("skywalking_grpc", port: port) { announce(ports) } })
            services.append(.init(service: listener))
        }
        if skywalkingHTTPEnabled {
            services.append(.init(service: app("skywalking_http", skywalkingRouter, port: config.skywalkingHTTPPort)))
        }
        services += [
            .init(service: app("query", queryRouter, port: config.queryPort)),
            .init(service: app("admin", adminRouter, port: config.adminPort)),
        ]
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: gracefulShutdownSignals,
                logger: logger
            ))
        runningGroup.withLock { $0 = group }
        do {
            try await withGracefulShutdownHandler {
                try await group.run()
            } onGracefulShutdown: {
                self.readiness.set(false)
            }
        } catch {
            readiness.set(false)
            throw error
        }
        readiness.set(false)
        logger.info("meshtrace collector stopped")
    }

    /// Stops the listeners, drains the ingest queue and closes the store, as SIGTERM does;
    /// for processes that embed the collector and run it outside their own service group.
    public func shutdownGracefully() async {
        await runningGroup.withLock { $0 }?.triggerGracefulShutdown()
    }

    /// Hummingbird logs every request at info; keep its logger at warning so ours stay readable.
    private func quietHandler(_ name: String) -> any LogHandler {
        ListenerLogHandler(label: "meshtrace.collector.\(name)", level: logger.logLevel)
    }
}

/// Collects the ports the listeners report and says when all are in.
final class BoundPorts: Sendable {
    private let state: Mutex<[String: Int]>
    private let expected: Set<String>

    init(expected: Set<String>) {
        self.expected = expected
        self.state = Mutex([:])
    }

    /// Returns all ports once the last expected listener has reported, else nil.
    func record(_ name: String, port: Int) -> [String: Int]? {
        state.withLock { ports in
            ports[name] = port
            return Set(ports.keys) == expected ? ports : nil
        }
    }
}
