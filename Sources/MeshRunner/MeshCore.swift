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
/// processes (whole process groups), then the sidecars, flushing their spans. A failure at
/// any step stops whatever had started and is rethrown, so `up` exits with it.
final class MeshCore: Service {
    let file: MeshFile
    let options: MeshOptions
    let logger: Logger
    let state: MeshState
    let collectorURL: String
    let queryURL: String?
    /// The embedded collector's OTLP/gRPC endpoint, for apps' OpenTelemetry SDKs.
    let otlpEndpoint: String?
    let onReady: @Sendable (MeshReady) -> Void
    let controlPort = StartSignal<Int>()
    /// `capture: netns`: the pods, torn down with the sidecars.
    let captured = CapturedPods()

    init(file: MeshFile, options: MeshOptions, logger: Logger, state: MeshState, collectorURL: String, queryURL: String?,
         otlpEndpoint: String? = nil, onReady: @escaping @Sendable (MeshReady) -> Void) {
        self.otlpEndpoint = otlpEndpoint
        self.file = file
        self.options = options
        self.logger = logger
        self.state = state
        self.collectorURL = collectorURL
        self.queryURL = queryURL
        self.onReady = onReady
    }

    func controlPortBound(_ port: Int) { controlPort.succeed(port) }
    func controlPortFailed() { controlPort.fail() }

    func run() async throws {
        let exporter = SpanExportTarget.resolve(url: collectorURL, explicit: nil) ?? SpanExportTarget(kind: .zipkin, url: collectorURL)
        let started: StartedSidecars
        var processGuard: MeshGuard?
        do {
            try ServicePreflight.check(file.services)
            processGuard = options.guardProcesses ? try MeshGuard.start(executable: options.executable) : nil
            started = file.capture == .netns
                ? try await startCapturedSidecars(exporter: exporter, group: MultiThreadedEventLoopGroup.singleton)
                : try await startSidecars(exporter: exporter, group: MultiThreadedEventLoopGroup.singleton)
        } catch {
            processGuard?.release()
            await uncancelled { await self.stopSidecars() }
            throw error
        }

        // The service processes, each told to call out through its own sidecar.
        let printer = LogPrinter(services: file.services.flatMap(\.instanceNames) + (file.prometheus == nil ? [] : ["prometheus"]))
        let supervisors = file.services.flatMap { service in
            service.instanceNames.map { instance in
                let supervisor = makeSupervisor(for: service, instance: instance, started: started, printer: printer, processGuard: processGuard)
                state.attach(supervisor, to: instance)
                return supervisor
            }
        }

        var failure: (any Error)?
        var stateFile: String?
        var prometheus: EmbeddedPrometheus?
        await withTaskGroup(of: Void.self) { tasks in
            for supervisor in supervisors { tasks.addTask { await supervisor.run() } }
            tasks.addTask { await self.monitorHealth() }
            if let watch = options.watchFile { tasks.addTask { await self.watch(watch) } }
            do {
                if try await waitForHealthy(timeout: .seconds(60)) {
                    let port = try await controlPort.value()
                    let controlURL = "http://127.0.0.1:\(port)"
                    var ready = MeshReady(
                        controlURL: controlURL, gatewayURL: started.gatewayURL, queryURL: queryURL, collectorURL: collectorURL,
                        otlpEndpoint: otlpEndpoint, services: state.status())
                    if let spec = file.prometheus {
                        // Needs the control URL for discovery, so it starts last; a missing binary is
                        // said and the mesh runs on.
                        prometheus = try EmbeddedPrometheus.prepare(spec, mesh: file.name, controlURL: controlURL, printer: printer,
                                                                    logger: logger, processGuard: processGuard)
                        if let prometheus {
                            tasks.addTask { await prometheus.supervisor.run() }
                            if !(await prometheus.waitReady(timeout: .seconds(30))) {
                                logger.warning("prometheus is not ready after 30 s; see its output above")
                            }
                            ready.prometheusURL = prometheus.url
                        } else {
                            ready.prometheusNote = EmbeddedPrometheus.notInstalled
                        }
                    }
                    if let directory = options.stateDirectory {
                        stateFile = MeshStateFile.write(ready, mesh: file.name, directory: directory, logger: logger)
                    }
                    onReady(ready)
                    // Run until asked to stop (SIGINT/SIGTERM), then take everything down in order.
                    try? await gracefulShutdown()
                }
            } catch {
                failure = error
            }
            logger.info("stopping services")
            // Stopping runs to the end even when this task was cancelled (a part of the mesh
            // failed): its waits must not return early and leave a process behind.
            let running = supervisors + [prometheus?.supervisor].compactMap { $0 }
            await uncancelled {
                await withTaskGroup(of: Void.self) { stops in
                    for supervisor in running { stops.addTask { await supervisor.stop() } }
                }
            }
            tasks.cancelAll()
            while await tasks.next() != nil {}
        }
        processGuard?.release()
        prometheus?.removeDirectory()
        await uncancelled { await self.stopSidecars() }
        if let stateFile { MeshStateFile.removeOwn(stateFile) }
        logger.info("mesh stopped")
        if let failure, !(failure is CancellationError) { throw failure }
    }

    /// Runs `body` in a task of its own, which the caller's cancellation does not reach.
    private func uncancelled(_ body: @escaping @Sendable () async -> Void) async {
        await Task { await body() }.value
    }

    private func stopSidecars() async {
        for egress in state.egressListeners { await egress.server.shutdown() }
        for entry in state.all {
            await entry.server.shutdown()
            await entry.telemetry.flush()
        }
        await captured.teardown()
    }

    /// Probes each service's health path directly on its app port every second.
    private func monitorHealth() async {
        while !Task.isCancelled {
            state.sampleRequests()
            for entry in state.all where entry.supervisor != nil {
                let healthy = file.capture == .netns
                    ? await capturedHealth(of: entry.name, port: entry.appPort, path: entry.healthPath ?? "/")
                    : await HealthProbe.check(port: entry.appPort, path: entry.healthPath ?? "/")
                state.setHealth(entry.name, healthy)
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// True once every service is healthy, or after `timeout` with a warning (a slow service
    /// should not keep the UI from a person); false when asked to stop while waiting.
    private func waitForHealthy(timeout: Duration) async throws -> Bool {
        let start = ContinuousClock.now
        var told = false
        while ContinuousClock.now < start + timeout {
            try Task.checkCancellation()
            if Task.isShuttingDownGracefully { return false }
            if state.all.allSatisfy({ $0.healthy }) { return true }
            if !told, ContinuousClock.now > start + .seconds(10) {
                // A person sees nothing until the mesh is ready: say what it waits for.
                told = true
                let waiting = state.all.filter { !$0.healthy }.map { "\($0.name) (\($0.healthPath ?? "/") on port \($0.appPort))" }
                logger.notice("still waiting for health: \(waiting.joined(separator: ", ")); the mesh starts anyway after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        let unhealthy = state.all.filter { !$0.healthy }.map(\.name)
        logger.warning("services not healthy yet; continuing", metadata: ["services": "\(unhealthy.joined(separator: ","))"])
        return true
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

/// A value one task sets once (the control port) and another awaits; the wait ends with an
/// error when the setter reports failure or the waiting task is cancelled, never hangs.
final class StartSignal<Value: Sendable>: Sendable {
    private struct State {
        var result: Result<Value, any Error>?
        var waiters: [CheckedContinuation<Value, any Error>] = []
    }
    private let state = Mutex(State())

    func succeed(_ value: Value) { finish(.success(value)) }
    func fail() { finish(.failure(MeshStartError("a part of the mesh did not start"))) }

    private func finish(_ result: Result<Value, any Error>) {
        let waiters = state.withLock { s -> [CheckedContinuation<Value, any Error>] in
            guard s.result == nil else { return [] }
            s.result = result
            defer { s.waiters = [] }
            return s.waiters
        }
        for waiter in waiters { waiter.resume(with: result) }
    }

    func value() async throws -> Value {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Checked under the lock: a cancellation after it finds this waiter in the list.
                let ready = state.withLock { s -> Result<Value, any Error>? in
                    if let result = s.result { return result }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    s.waiters.append(continuation)
                    return nil
                }
                if let ready { continuation.resume(with: ready) }
            }
        } onCancel: {
            let waiters = state.withLock { s -> [CheckedContinuation<Value, any Error>] in
                defer { s.waiters = [] }
                return s.waiters
            }
            for waiter in waiters { waiter.resume(throwing: CancellationError()) }
        }
    }
}
