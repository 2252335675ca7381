import Collector
import Foundation
import UnixSignals
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SidecarProxy
import Synchronization
import TraceExport
import TraceModel
import TraceStorage

/// How `meshtrace up` / `meshtrace demo` run a mesh file.
public struct MeshOptions: Sendable {
    /// Control-plane API port (`meshtrace telemetry set`, `status`, `proxy-config` talk to it); 0 picks one.
    public var controlPort = 15100
    /// The meshtrace binary, substituted for `${MESHTRACE}` in service commands.
    public var executable: String
    /// mesh.yaml to watch for telemetry edits, if the mesh came from a file.
    public var watchFile: String?
    /// Where `up` records its control URL so other commands find it (`MeshStateFile`).
    public var stateDirectory: String?
    /// Default data dir for the embedded collector when the file names none. Required when the
    /// file names none: the collector keeps traces on disk.
    public var defaultDataDir: String?
    /// How this run sets a port, where it is not the mesh.yaml key (demo's flags):
    /// `collector.queryPort` -> `--query-port`. Used in "port in use" errors.
    public var settingNames: [String: String] = [:]
    /// Run `meshtrace mesh-guard` (from `executable`), which stops the services if this
    /// process dies without stopping them (SIGKILL, a crash).
    public var guardProcesses = true
    /// Passed to service processes as `MESHTRACE_LOG_LEVEL` (the demo services follow it).
    public var logLevel: String?

    public init(executable: String) {
        self.executable = executable
    }
}

/// What a running mesh tells its caller once everything is up and healthy.
public struct MeshReady: Sendable {
    public var controlURL: String
    public var gatewayURL: String?
    public var queryURL: String?
    public var collectorURL: String
    /// The embedded collector's OTLP/gRPC endpoint (OTEL_EXPORTER_OTLP_ENDPOINT of every service).
    public var otlpEndpoint: String? = nil
    public var services: [ServiceState]
    /// Prometheus run beside the mesh, when asked for and installed.
    public var prometheusURL: String?
    /// Why Prometheus was asked for and not started.
    public var prometheusNote: String?
}

/// One service as the control plane reports it.
public struct ServiceState: Sendable, Codable, Equatable {
    public var name: String
    public var pid: Int32?
    public var phase: String
    public var restarts: Int
    public var healthy: Bool
    public var appPort: Int
    public var inbound: String?
    public var outbound: String?
    public var metrics: String?
    public var requestsPerSecond: Double
    /// The service, when this row is one of its replicas (`name` is then `NAME-i`).
    public var service: String?
    /// Replicas of a service with several: times the callers' outlier detection ejected this
    /// one, and whether one of them has it ejected now.
    public var ejections: Int?
    public var ejected: Bool?
}

/// Runs a mesh: the embedded collector, one sidecar per service (in this process, so the
/// control plane can change them live), the gateway, the service processes, and the control API.
public final class MeshRuntime: Service {
    let file: MeshFile
    let options: MeshOptions
    let logger: Logger
    let gracefulShutdownSignals: [UnixSignal]
    let onReady: @Sendable (MeshReady) -> Void
    let state: MeshState

    public init(file: MeshFile, options: MeshOptions, logger: Logger, gracefulShutdownSignals: [UnixSignal] = [],
                onReady: @escaping @Sendable (MeshReady) -> Void = { _ in }) {
        self.file = file
        self.options = options
        self.logger = logger
        self.gracefulShutdownSignals = gracefulShutdownSignals
        self.onReady = onReady
        self.state = MeshState(file: file)
    }

    public func run() async throws {
        // Every fixed port first: a taken one stops the mesh before any part of it starts.
        if let directory = options.stateDirectory {
            for leftover in MeshStateFile.collectLeftovers(directory: directory) { logger.warning("\(leftover)") }
        }
        // `capture: netns` without root cannot start whatever the ports: say that first (a
        // non-root user was told about a taken port, fixed it, and only then heard about root).
        if file.capture == .netns, let reason = PodNetwork.unavailable() {
            throw MeshStartError(MeshCore.captureUnavailable(reason))
        }
        try PortPreflight.check(file.fixedPorts(controlPort: options.controlPort, settingNames: options.settingNames))
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        let collectorURL: String
        var queryURL: String?
        var otlpEndpoint: String?
        if let url = file.collector.url {
            collectorURL = url
        } else {
            guard let dataDir = file.collector.dataDir ?? options.defaultDataDir else {
                throw MeshStartError("the embedded collector needs a data directory: set collector.dataDir in the mesh file")
            }
            var config = CollectorConfiguration()
            config.zipkinPort = file.collector.zipkinPort
            config.otlpHTTPPort = file.collector.otlpPort
            config.otlpGRPCPort = file.collector.otlpGRPCPort
            config.queryPort = file.collector.queryPort
            config.adminPort = file.collector.adminPort
            config.dataDirectory = dataDir
            let (stream, continuation) = AsyncStream.makeStream(of: ListeningAddresses.self)
            let collector = CollectorServer(configuration: config, logger: logger, onListening: { continuation.yield($0) })
            // The collector must be listening before sidecars export to it, so start it first
            // and learn its ports; the service group then owns its lifetime.
            let started = CollectorStarter(collector: collector, addresses: stream, continuation: continuation)
            let addresses = try await started.waitUntilListening(dataDir: dataDir)
            services.append(.init(service: started))
            let exporterPath = file.telemetry.exporter == "otlp" ? "http://127.0.0.1:\(addresses.otlpHTTPPort)/v1/traces"
                : "http://127.0.0.1:\(addresses.zipkinPort)/api/v2/spans"
            collectorURL = exporterPath
            queryURL = "http://127.0.0.1:\(addresses.queryPort)"
            otlpEndpoint = addresses.otlpGRPCPort.map { "http://127.0.0.1:\($0)" }
            state.collectorAdmin = "127.0.0.1:\(addresses.adminPort)"
        }
        let core = MeshCore(
            file: file, options: options, logger: logger, state: state, collectorURL: collectorURL, queryURL: queryURL,
            otlpEndpoint: otlpEndpoint, onReady: onReady)
        let controlSetting = options.settingNames["--control-port"] ?? "--control-port"
        let control = ControlPlane(state: state, logger: logger).application(
            port: options.controlPort, onBound: { port in core.controlPortBound(port) })
        services.append(.init(service: StartFailureLabel(control) { error in
            core.controlPortFailed()
            return MeshStartError("the control plane cannot listen on 127.0.0.1:\(self.options.controlPort) (\(controlSetting)): \(error)")
        }))
        services.append(.init(service: core))
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: gracefulShutdownSignals, logger: logger))
        try await group.run()
    }
}

/// Runs a service and, when it fails, throws the error `label` words for people instead
/// (a bare "Address already in use" does not say which listener or which setting).
struct StartFailureLabel<Wrapped: Service>: Service {
    let wrapped: Wrapped
    let label: @Sendable (any Error) -> MeshStartError

    init(_ wrapped: Wrapped, label: @escaping @Sendable (any Error) -> MeshStartError) {
        self.wrapped = wrapped
        self.label = label
    }

    func run() async throws {
        do {
            try await wrapped.run()
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw label(error)
        }
    }
}

/// Starts the collector eagerly (so its ports are known before sidecars are configured) and
/// then behaves as the collector's service inside the group.
final class CollectorStarter: Service {
    let collector: CollectorServer
    let addresses: AsyncStream<ListeningAddresses>
    let continuation: AsyncStream<ListeningAddresses>.Continuation
    private let task = Mutex<Task<Void, any Error>?>(nil)

    init(collector: CollectorServer, addresses: AsyncStream<ListeningAddresses>, continuation: AsyncStream<ListeningAddresses>.Continuation) {
        self.collector = collector
        self.addresses = addresses
        self.continuation = continuation
    }

    /// Starts the collector and returns its addresses once every listener is bound; throws,
    /// naming the data dir, when it stops before that (a store it cannot open, a port taken
    /// between the check and the bind). The stream is finished when `run` ends either way, so
    /// a collector that never listens cannot leave this waiting.
    func waitUntilListening(dataDir: String) async throws -> ListeningAddresses {
        let collector = self.collector
        let continuation = self.continuation
        let running = Task {
            defer { continuation.finish() }
            try await collector.run()
        }
        task.withLock { $0 = running }
        for await a in addresses { return a }
        if case .failure(let error) = await running.result {
            throw MeshStartError("the embedded collector did not start (data dir \(dataDir)): \(error)")
        }
        throw MeshStartError("the embedded collector stopped before it was listening (data dir \(dataDir))")
    }

    func run() async throws {
        guard let running = task.withLock({ $0 }) else { return }
        try await withTaskCancellationHandler {
            try await withGracefulShutdownHandler {
                try await running.value
            } onGracefulShutdown: {
                Task { await self.collector.shutdownGracefully() }
            }
        } onCancel: {
            running.cancel()
        }
    }
}
