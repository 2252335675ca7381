import Foundation
import Logging

/// Prometheus run beside the mesh (`prometheus: true` in mesh.yaml, `up --prometheus`): the
/// installed `prometheus` binary, with a configuration from `PrometheusConfig` (discovery from
/// the control plane) and a data dir in a temporary directory, both removed when the mesh
/// stops. Supervised like a service: restarted if it crashes, stopped with the mesh, and
/// stopped by the process guard if `up` dies.
struct EmbeddedPrometheus {
    let directory: String
    let port: Int
    let supervisor: ServiceSupervisor

    var url: String { "http://127.0.0.1:\(port)" }

    static let notInstalled = "prometheus is not installed, so the mesh runs without it: install it with "
        + "`apt-get install prometheus` (Debian, Ubuntu) or from https://prometheus.io/download/, "
        + "or point your own Prometheus at `meshtrace prometheus-config`"

    /// Prepares the run; nil (with `notInstalled` to tell the user) when no `prometheus` is on PATH.
    static func prepare(_ spec: PrometheusSpec, mesh: String, controlURL: String, printer: LogPrinter, logger: Logger,
                        processGuard: MeshGuard?, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> EmbeddedPrometheus? {
        guard let executable = ServicePreflight.find("prometheus", in: FileManager.default.currentDirectoryPath,
                                                     path: environment["PATH"] ?? "/usr/bin:/bin") else { return nil }
        let port = spec.port != 0 ? spec.port : try PortAllocator.freePort()
        let directory = NSTemporaryDirectory() + "meshtrace-prometheus-\(getpid())-\(port)"
        do {
            try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
            try PrometheusConfig.render(mesh: mesh, controlURL: controlURL, scrapeInterval: spec.scrapeInterval)
                .write(toFile: directory + "/prometheus.yml", atomically: true, encoding: .utf8)
        } catch {
            throw MeshStartError("cannot prepare Prometheus's directory \(directory): \(error)")
        }
        let arguments = [
            executable, "--config.file=\(directory)/prometheus.yml", "--storage.tsdb.path=\(directory)/data",
            "--web.listen-address=127.0.0.1:\(port)", "--storage.tsdb.retention.time=1d", "--log.level=error",
        ]
        let supervisor = ServiceSupervisor(name: "prometheus", arguments: arguments, environment: environment, workingDirectory: directory,
                                           output: printer, logger: logger, processGuard: processGuard)
        return EmbeddedPrometheus(directory: directory, port: port, supervisor: supervisor)
    }

    /// True once `/-/ready` answers 200, false after `timeout`.
    func waitReady(timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if await HealthProbe.check(port: port, path: "/-/ready") { return true }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return false
    }

    func removeDirectory() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
