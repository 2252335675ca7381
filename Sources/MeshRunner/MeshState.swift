import Foundation
import SidecarProxy
import Synchronization
import TraceExport
import TraceModel

/// The live state the control plane reads and changes: every sidecar's configuration box,
/// its telemetry, and the service processes.
final class MeshState: Sendable {
    struct Entry: Sendable {
        var name: String
        var appPort: Int
        var healthPath: String?
        var box: ConfigurationBox
        var telemetry: SidecarTelemetry
        var server: SidecarServer
        var supervisor: ServiceSupervisor?
        var healthy = false
        var lastRequests = 0
        var lastSample = ContinuousClock.now
        var rate = 0.0
    }

    /// A per-upstream egress listener; hidden from status, but telemetry changes reach it too.
    struct Egress: Sendable {
        var service: String
        var upstream: String
        var box: ConfigurationBox
        var server: SidecarServer
    }

    private let entries = Mutex<[Entry]>([])
    private let egress = Mutex<[Egress]>([])
    private let telemetrySpec: Mutex<TelemetrySpec>
    let meshName: String

    init(file: MeshFile) {
        telemetrySpec = Mutex(file.telemetry)
        meshName = file.name
    }

    func add(_ entry: Entry) { entries.withLock { $0.append(entry) } }

    func updateEntry(_ name: String, _ change: (inout Entry) -> Void) {
        entries.withLock { list in
            for i in list.indices where list[i].name == name { change(&list[i]) }
        }
    }
    var all: [Entry] { entries.withLock { $0 } }
    var egressListeners: [Egress] { egress.withLock { $0 } }
    func addEgress(_ listener: Egress) { egress.withLock { $0.append(listener) } }
    var telemetry: TelemetrySpec { telemetrySpec.withLock { $0 } }

    func setHealth(_ name: String, _ healthy: Bool) {
        entries.withLock { list in
            for i in list.indices where list[i].name == name { list[i].healthy = healthy }
        }
    }

    /// Applies sampling, propagation, custom tags and excluded paths to every sidecar at once.
    /// Boxes are swapped whole, so each request sees either the old or the new settings.
    func apply(_ spec: TelemetrySpec) throws(MeshFileError) {
        var tags: [CustomTag] = []
        for (name, source) in spec.customTags.sorted(by: { $0.key < $1.key }) {
            do {
                tags.append(try CustomTag.parse("\(name)=\(source)", environment: ProcessInfo.processInfo.environment))
            } catch {
                throw MeshFileError(file: "telemetry", line: nil, column: nil, field: "customTags.\(name)", message: error.description, hint: nil)
            }
        }
        telemetrySpec.withLock { $0 = spec }
        for box in all.map(\.box) + egressListeners.map(\.box) {
            box.update { config in
                config.samplingPercent = spec.samplingPercent
                config.propagation = spec.propagation
                config.customTags = tags
                config.healthCheckPaths = spec.excludePaths
                config.inferParent = spec.inferParent
            }
        }
    }

    /// Services with health, ports and the inbound request rate since the previous call.
    func status() -> [ServiceState] {
        entries.withLock { list in
            let now = ContinuousClock.now
            return list.indices.map { i in
                let e = list[i]
                let total = e.server.stats.snapshot.requestsTotal
                let elapsed = Double((now - e.lastSample).components.seconds) + Double((now - e.lastSample).components.attoseconds) / 1e18
                if elapsed >= 1 {
                    list[i].rate = Double(total - e.lastRequests) / elapsed
                    list[i].lastRequests = total
                    list[i].lastSample = now
                }
                let status = e.supervisor?.status
                let addresses = e.server.addresses
                return ServiceState(
                    name: e.name, pid: status?.pid, phase: status?.phase.rawValue ?? "running", restarts: status?.restarts ?? 0,
                    healthy: e.healthy, appPort: e.appPort, inbound: addresses.inbound ?? addresses.gateway, outbound: addresses.outbound,
                    metrics: addresses.metrics, requestsPerSecond: (list[i].rate * 10).rounded() / 10)
            }
        }
    }

    func proxyConfig(_ name: String) -> String? {
        guard let e = all.first(where: { $0.name == name }) else { return nil }
        return ConfigDump.render(e.box.config, addresses: e.server.addresses, inference: e.server.inference)
    }
}
