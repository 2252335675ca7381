import Foundation
import SidecarProxy
import Synchronization
import TraceExport
import TraceModel

/// The live state the control plane reads and changes: every sidecar's configuration box,
/// its telemetry, and the service processes.
final class MeshState: Sendable {
    struct Entry: Sendable {
        /// The instance: the service's name, or `NAME-i` for one of several replicas.
        var name: String
        /// The service this instance is a replica of (its spans' service name).
        var service: String
        var appPort: Int
        var healthPath: String?
        var box: ConfigurationBox
        var telemetry: SidecarTelemetry
        var server: SidecarServer
        var supervisor: ServiceSupervisor?
        var healthy = false
        /// Inbound request totals, one a second, for the last `rateWindow` (`RequestRate`).
        var requests = RequestRate()
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
    private let collectorAdminAddress = Mutex<String?>(nil)
    let meshName: String

    /// The embedded collector's admin listener (`/metrics`), for Prometheus discovery.
    var collectorAdmin: String? {
        get { collectorAdminAddress.withLock { $0 } }
        set { collectorAdminAddress.withLock { $0 = newValue } }
    }

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

    /// Records every sidecar's request total; called once a second.
    func sampleRequests(at now: ContinuousClock.Instant = .now) {
        entries.withLock { list in
            for i in list.indices { list[i].requests.record(total: list[i].server.stats.snapshot.requestsTotal, at: now) }
        }
    }

    /// Services with health, ports and the inbound request rate over the last 10 s.
    func status() -> [ServiceState] {
        entries.withLock { list in
            let now = ContinuousClock.now
            let endpoints = Self.endpointStats(list.map(\.server))  // egress listeners share their instance's sets
            return list.map { e in
                let status = e.supervisor?.status
                let addresses = e.server.addresses
                let rate = e.requests.perSecond(total: e.server.stats.snapshot.requestsTotal, at: now)
                return ServiceState(
                    name: e.name, pid: status?.pid, phase: status?.phase.rawValue ?? "running", restarts: status?.restarts ?? 0,
                    healthy: e.healthy, appPort: e.appPort, inbound: addresses.inbound ?? addresses.inboundCapture ?? addresses.gateway,
                    outbound: addresses.outbound ?? addresses.outboundCapture,
                    metrics: addresses.metrics, requestsPerSecond: (rate * 10).rounded() / 10,
                    service: e.service == e.name ? nil : e.service,
                    ejections: addresses.inbound.flatMap { endpoints[$0] }.map(\.ejections),
                    ejected: addresses.inbound.flatMap { endpoints[$0] }.map(\.ejected))
            }
        }
    }

    /// - Parameter name: an instance (`backend-2`) or a service (its first replica).
    func proxyConfig(_ name: String) -> String? {
        guard let e = all.first(where: { $0.name == name }) ?? all.first(where: { $0.service == name }) else { return nil }
        let dump = ConfigDump.render(e.box.config, addresses: e.server.addresses, inference: e.server.inference,
                                 spanNames: e.telemetry.naming.cardinality?.snapshot)
        // The per-upstream egress listeners (`<NAME>_URL`) belong to this service too.
        let egress = egressListeners.filter { $0.service == e.name }  // the instance's own
        guard !egress.isEmpty, var object = (try? JSONSerialization.jsonObject(with: Data(dump.utf8))) as? [String: Any] else { return dump }
        object["egress_listeners"] = egress.map { listener -> [String: Any] in
            ["upstream": listener.upstream, "address": listener.server.addresses.outbound ?? "-",
             "environment": listener.upstream.uppercased().replacingOccurrences(of: "-", with: "_") + "_URL"]
        }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else { return dump }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Requests per second over a sliding window (`RequestRate.window`, 10 s) from request totals
/// sampled once a second: it falls to 0 within the window after traffic stops. (The rate was
/// the change since whoever asked last, so two readers saw different numbers and a reader
/// after a quiet minute saw the last busy second's rate.)
struct RequestRate: Sendable {
    static let window = Duration.seconds(10)
    private var samples: [(at: ContinuousClock.Instant, total: Int)] = []

    mutating func record(total: Int, at now: ContinuousClock.Instant) {
        samples.append((now, total))
        // Keep one sample at or beyond the window's start, so the rate spans the whole window.
        while samples.count > 2, now - samples[1].at >= Self.window { samples.removeFirst() }
    }

    func perSecond(total: Int, at now: ContinuousClock.Instant) -> Double {
        guard let first = samples.first else { return 0 }
        let elapsed = (now - first.at).components
        let seconds = Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18
        guard seconds >= 1 else { return 0 }
        return Double(max(0, total - first.total)) / seconds
    }
}
