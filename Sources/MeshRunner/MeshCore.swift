#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SidecarProxy
import Synchronization
import TraceExport
import TraceModel

/// Starts sidecars, the gateway and the service processes; on graceful shutdown stops the
/// processes (whole process groups), then the sidecars, flushing their spans.
final class MeshCore: Service {
    let file: MeshFile
    let options: MeshOptions
    let logger: Logger
    let state: MeshState
    let collectorURL: String
    let queryURL: String?
    let onReady: @Sendable (MeshReady) -> Void
    private let controlPort = Mutex<(port: Int?, waiter: CheckedContinuation<Int, Never>?)>((nil, nil))

    init(file: MeshFile, options: MeshOptions, logger: Logger, state: MeshState, collectorURL: String, queryURL: String?,
         onReady: @escaping @Sendable (MeshReady) -> Void) {
        self.file = file
        self.options = options
        self.logger = logger
        self.state = state
        self.collectorURL = collectorURL
        self.queryURL = queryURL
        self.onReady = onReady
    }

    func controlPortBound(_ port: Int) {
        let waiter = controlPort.withLock { s -> CheckedContinuation<Int, Never>? in
            s.port = port
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: port)
    }

    private func boundControlPort() async -> Int {
        await withCheckedContinuation { continuation in
            let ready = controlPort.withLock { s -> Int? in
                if let port = s.port { return port }
                s.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func run() async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let spec = file.telemetry
        let exporter = SpanExportTarget.resolve(url: collectorURL, explicit: nil) ?? SpanExportTarget(kind: .zipkin, url: collectorURL)
        var sidecars: [(ServiceSpec, SidecarServer, ConfigurationBox)] = []

        // 1. One sidecar per service: inbound in front of the app, outbound for its calls.
        for service in file.services {
            let appPort = service.port != 0 ? service.port : try PortAllocator.freePort()
            var config = SidecarConfiguration()
            config.serviceName = service.name
            config.inboundPort = 0
            config.appPort = appPort
            config.outboundPort = 0
            config.metricsPort = 0
            config.adminPort = -1  // the control plane answers proxy-config for every sidecar
            config.samplingPercent = spec.samplingPercent
            config.propagation = spec.propagation
            config.healthCheckPaths = spec.excludePaths
            config.inferParent = spec.inferParent
            config.outboundPolicy = .allowAny
            config.logLevel = "warning"
            let (server, box) = try await startSidecar(config, exporter: exporter, group: group, appPort: appPort, service: service)
            sidecars.append((service, server, box))
        }
        // 2. Now every inbound address is known: tell each outbound listener where services live.
        let registry = sidecars.compactMap { service, server, _ -> UpstreamService? in
            guard let inbound = server.addresses.inbound, let (host, port) = Self.hostPort(inbound) else { return nil }
            return UpstreamService(name: service.name, host: host, port: port)
        }
        for (_, _, box) in sidecars { box.update { $0.upstreams = registry } }
        try state.apply(spec)  // custom tags parsed once, the same way live changes are

        // 3. The gateway: an edge sidecar that starts traces.
        var gatewayURL: String?
        if let gateway = file.gateway {
            var config = SidecarConfiguration()
            config.serviceName = "gateway"
            config.inboundPort = -1
            config.outboundPort = -1
            config.gatewayPort = gateway.port
            config.routes = gateway.routes.map { GatewayRoute(prefix: $0.prefix, service: $0.service) }
            config.upstreams = registry
            config.metricsPort = 0
            config.adminPort = -1
            config.samplingPercent = spec.samplingPercent
            config.propagation = spec.propagation
            config.healthCheckPaths = spec.excludePaths
            config.logLevel = "warning"
            let (server, _) = try await startSidecar(config, exporter: exporter, group: group, appPort: 0, service: nil)
            gatewayURL = server.addresses.gateway.map { "http://\($0)" }
        }

        // 3b. Per-upstream egress listeners, for clients that ignore HTTP_PROXY: `<NAME>_URL`
        //     points at a listener whose only destination is that upstream. It shares the
        //     service's telemetry, so its CLIENT spans belong to the calling service.
        var egress: [String: [String: String]] = [:]
        var quietLogger = logger
        quietLogger.logLevel = .warning
        for (service, _, _) in sidecars {
            guard let entry = state.all.first(where: { $0.name == service.name }) else { continue }
            for upstream in service.upstreams {
                var config = entry.box.config
                config.appPort = nil
                config.inboundPort = -1
                config.outboundPort = 0
                config.metricsPort = -1
                config.adminPort = -1
                config.defaultUpstream = upstream
                let box = ConfigurationBox(config)
                // Same in-flight tracker as the service's own sidecar: parent inference must see the
                // inbound requests whichever listener the app calls out through.
                let server = SidecarServer(configuration: box, telemetry: entry.telemetry, logger: quietLogger, group: group,
                                           inference: entry.server.inference)
                try await server.start()
                state.addEgress(MeshState.Egress(service: service.name, upstream: upstream, box: box, server: server))
                if let address = server.addresses.outbound { egress[service.name, default: [:]][upstream] = "http://\(address)" }
            }
        }

        // 4. The service processes, each told to call out through its own sidecar.
        let printer = LogPrinter(services: file.services.map(\.name))
        let supervisors = sidecars.map { service, server, _ in
            let supervisor = ServiceSupervisor(
                name: service.name, arguments: arguments(for: service, port: state.all.first { $0.name == service.name }?.appPort ?? 0),
                environment: environment(for: service, outbound: server.addresses.outbound, egress: egress[service.name] ?? [:]),
                workingDirectory: service.workingDir, output: printer, logger: logger)
            state.attach(supervisor, to: service.name)
            return supervisor
        }

        await withTaskGroup(of: Void.self) { tasks in
            for supervisor in supervisors { tasks.addTask { await supervisor.run() } }
            tasks.addTask { await self.monitorHealth() }
            if let watch = options.watchFile { tasks.addTask { await self.watch(watch) } }

            await waitForHealthy(timeout: .seconds(60))
            let port = await boundControlPort()
            let ready = MeshReady(
                controlURL: "http://127.0.0.1:\(port)", gatewayURL: gatewayURL, queryURL: queryURL, collectorURL: collectorURL,
                services: state.status())
            if let stateFile = options.stateFile { MeshStateFile.write(ready, to: stateFile, logger: logger) }
            onReady(ready)

            // Run until asked to stop (SIGINT/SIGTERM), then take everything down in order.
            try? await gracefulShutdown()
            logger.info("stopping services")
            await withTaskGroup(of: Void.self) { stops in
                for supervisor in supervisors { stops.addTask { await supervisor.stop() } }
            }
            tasks.cancelAll()
            while await tasks.next() != nil {}
        }
        for egress in state.egressListeners { await egress.server.shutdown() }
        for entry in state.all {
            await entry.server.shutdown()
            await entry.telemetry.flush()
        }
        if let stateFile = options.stateFile { try? FileManager.default.removeItem(atPath: stateFile) }
        logger.info("mesh stopped")
    }

    private func startSidecar(_ config: SidecarConfiguration, exporter: SpanExportTarget, group: any EventLoopGroup, appPort: Int,
                              service: ServiceSpec?) async throws -> (SidecarServer, ConfigurationBox) {
        var config = config
        config.exporter.kind = exporter.kind.rawValue
        config.exporter.endpoint = exporter.url  // so proxy-config shows where spans go
        let box = ConfigurationBox(config)
        var sidecarLogger = logger
        sidecarLogger.logLevel = .warning
        let telemetry = SidecarTelemetry(
            configuration: TelemetryConfiguration(serviceName: config.serviceName, exporter: exporter),
            group: group, logger: sidecarLogger, samplingPercent: { box.snapshot.config.samplingPercent })
        telemetry.start()
        let server = SidecarServer(configuration: box, telemetry: telemetry, logger: sidecarLogger, group: group)
        try await server.start()
        state.add(MeshState.Entry(name: config.serviceName, appPort: appPort, healthPath: service?.healthPath, box: box,
                                  telemetry: telemetry, server: server, supervisor: nil, healthy: service == nil))
        return (server, box)
    }

    func arguments(for service: ServiceSpec, port: Int) -> [String] {
        ([service.command] + service.args).map { substitute($0, port: port) }
    }

    private func substitute(_ text: String, port: Int) -> String {
        text.replacingOccurrences(of: "${PORT}", with: String(port)).replacingOccurrences(of: "${MESHTRACE}", with: options.executable)
    }

    /// The process environment plus: PORT, HTTP_PROXY toward its outbound sidecar, `<NAME>_URL`
    /// per upstream, and where MeshtraceTracing should export app spans.
    func environment(for service: ServiceSpec, outbound: String?, egress: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        let port = state.all.first { $0.name == service.name }?.appPort ?? 0
        env["PORT"] = String(port)
        env["MESHTRACE_SERVICE"] = service.name
        env["MESHTRACE_COLLECTOR"] = collectorURL
        if let outbound {
            env["HTTP_PROXY"] = "http://\(outbound)"
            env["http_proxy"] = "http://\(outbound)"
            env["NO_PROXY"] = "localhost,127.0.0.1"
            env["no_proxy"] = "localhost,127.0.0.1"
        }
        for upstream in service.upstreams {
            let key = upstream.uppercased().replacingOccurrences(of: "-", with: "_") + "_URL"
            env[key] = egress[upstream] ?? "http://\(upstream)"
        }
        for (key, value) in service.env { env[key] = substitute(value, port: port) }
        return env
    }

    static func hostPort(_ address: String) -> (String, Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]) else { return nil }
        return (String(address[..<colon]), port)
    }

    /// Probes each service's health path directly on its app port every second.
    private func monitorHealth() async {
        while !Task.isCancelled {
            for entry in state.all where entry.supervisor != nil {
                let healthy = await HealthProbe.check(port: entry.appPort, path: entry.healthPath ?? "/")
                state.setHealth(entry.name, healthy)
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    private func waitForHealthy(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if state.all.allSatisfy({ $0.healthy }) { return }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let unhealthy = state.all.filter { !$0.healthy }.map(\.name)
        logger.warning("services not healthy yet; continuing", metadata: ["services": "\(unhealthy.joined(separator: ","))"])
    }

    /// Re-reads the mesh file when it changes and applies its telemetry section live.
    private func watch(_ path: String) async {
        var last = Self.modificationDate(path)
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            let current = Self.modificationDate(path)
            guard current != last else { continue }
            last = current
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                let updated = try MeshFileParser(fileName: path).parse(text)
                if updated.telemetry != state.telemetry {
                    try state.apply(updated.telemetry)
                    logger.notice("applied telemetry from \(path)", metadata: ["sampling": "\(updated.telemetry.samplingPercent)"])
                }
                if updated.services != file.services || updated.gateway != file.gateway {
                    logger.warning("services or gateway changed in \(path); restart `meshtrace up` to apply them (telemetry applies live)")
                }
            } catch let error as MeshFileError {
                logger.error("\(error.description)")
            } catch {
                logger.error("cannot read \(path): \(error)")
            }
        }
    }

    static func modificationDate(_ path: String) -> Date? {
        (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date
    }
}

extension MeshState {
    func attach(_ supervisor: ServiceSupervisor, to name: String) {
        updateEntry(name) { $0.supervisor = supervisor }
    }
}

public enum PortAllocator {
    struct NoPort: Error {}

    /// A port for an app to listen on, chosen here and bound later by the app's own process.
    ///
    /// Picked below the kernel's ephemeral range (`ip_local_port_range`) when there is room:
    /// ports from that range are also handed out as the local end of outgoing connections, and
    /// a keep-alive connection that happens to take the app's port keeps the app from binding
    /// it, restart after restart. Falls back to a port the kernel picks when no candidate below
    /// the range is free.
    static func freePort() throws -> Int {
        let (low, _) = ephemeralRange() ?? (32768, 60999)
        let floor = 10_000
        if low - floor >= 1000 {
            for _ in 0..<64 {
                let candidate = Int.random(in: floor..<low)
                if isFree(candidate, strictly: true) { return candidate }
            }
        }
        return try kernelPickedPort()
    }

    /// The kernel's ephemeral port range, from /proc on Linux.
    static func ephemeralRange() -> (Int, Int)? {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard parts.count == 2, parts[0] > 0, parts[0] <= parts[1] else { return nil }
        return (parts[0], parts[1])
    }

    /// A port the kernel considers free right now (bound and released).
    static func kernelPickedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NoPort() }
        defer { close(fd) }
        guard LoopbackAddress.with(port: 0, { bind(fd, $0, $1) }) == 0 else { throw NoPort() }
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard named == 0 else { throw NoPort() }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// True when nothing listens on 127.0.0.1:port and we may bind it.
    /// `strictly` leaves out SO_REUSEADDR, so a port held by any socket at all (a connection's
    /// local end, one in TIME_WAIT) counts as taken, not only a listening one.
    public static func isFree(_ port: Int, strictly: Bool = false) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if !strictly {
            var yes: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        }
        return LoopbackAddress.with(port: port) { bind(fd, $0, $1) } == 0
    }
}
