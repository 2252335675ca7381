import Collector
import Foundation
import Collector
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import TraceModel

/// The mesh's control API, what `istiod` is to Istio's sidecars, on loopback:
/// `GET /mesh/status`, `GET /mesh/telemetry`, `POST /mesh/telemetry` (JSON with any of
/// sampling, propagation, customTags, excludePaths), `GET /mesh/proxy-config/{service}`, and
/// `GET /prometheus/targets` (Prometheus HTTP service discovery).
struct ControlPlane {
    let state: MeshState
    let logger: Logger

    func application(port: Int, onBound: @escaping @Sendable (Int) -> Void) -> some Service {
        let router = Router()
        let state = self.state
        router.get("/mesh/status") { _, _ in
            Self.json(MeshStatus(mesh: state.meshName, services: state.status(), telemetry: TelemetryUpdate(state.telemetry)))
        }
        router.get("/mesh/telemetry") { _, _ in Self.json(TelemetryUpdate(state.telemetry)) }
        router.post("/mesh/telemetry") { request, _ in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let update: TelemetryUpdate
            do {
                update = try JSONDecoder().decode(TelemetryUpdate.self, from: Data(buffer: body))
            } catch {
                return Self.error(.badRequest, "body must be JSON like {\"sampling\": 5}: \(error)")
            }
            var spec = state.telemetry
            do {
                try update.apply(to: &spec)
                try state.apply(spec)
            } catch let error as MeshFileError {
                return Self.error(.badRequest, "\(error.field): \(error.message)")
            } catch {
                return Self.error(.badRequest, "\(error)")
            }
            logger.notice("telemetry changed through the control plane", metadata: ["sampling": "\(spec.samplingPercent)", "mode": "\(spec.mode.rawValue)"])
            return Self.json(TelemetryUpdate(spec))
        }
        router.get("/mesh/proxy-config/{service}") { _, context in
            let name = context.parameters.get("service") ?? ""
            guard let dump = state.proxyConfig(name) else {
                let known = state.all.map(\.name).joined(separator: ", ")
                return Self.error(.notFound, "no sidecar for '\(name)'; known: \(known)")
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: dump)))
        }
        // Prometheus HTTP service discovery: every sidecar's metrics listener, live.
        router.get("/prometheus/targets") { _, _ in
            let groups = PrometheusTargets.groups(
                mesh: state.meshName, namespace: "default",
                sidecars: state.all.map { ($0.name, $0.server.addresses.metrics) }, collectorAdmin: state.collectorAdmin)
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: PrometheusTargets.json(groups))))
        }
        let quiet = Logger(label: "meshtrace.control", factory: { ListenerLogHandler(label: $0) })
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port), serverName: "meshtrace-control"),
            onServerRunning: { channel in onBound(channel.localAddress?.port ?? port) },
            logger: quiet)
    }

    static func json(_ value: some Encodable) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = "{\"error\":\(JSONText.quote(message))}"
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

public struct MeshStatus: Codable, Sendable {
    public var mesh: String
    public var services: [ServiceState]
    public var telemetry: TelemetryUpdate
}

/// The telemetry settings on the wire; every field optional so a client can change one.
public struct TelemetryUpdate: Codable, Sendable, Equatable {
    public var sampling: Double?
    public var propagation: [String]?
    public var customTags: [String: String]?
    public var excludePaths: [String]?
    /// `head` or `tail` (`telemetry.mode`).
    public var mode: String?
    public var tail: TailUpdate?

    /// `telemetry.tail`; durations as text (`500ms`, `10s`).
    public struct TailUpdate: Codable, Sendable, Equatable {
        public var keepPercent: Double?
        public var slowerThan: String?
        public var decisionWait: String?
        public var policyFile: String?
        /// What tail mode keeps, in words (answers only).
        public var summary: String?

        public init(keepPercent: Double? = nil, slowerThan: String? = nil, decisionWait: String? = nil, policyFile: String? = nil) {
            self.keepPercent = keepPercent
            self.slowerThan = slowerThan
            self.decisionWait = decisionWait
            self.policyFile = policyFile
        }
    }

    public init(
        sampling: Double? = nil, propagation: [String]? = nil, customTags: [String: String]? = nil, excludePaths: [String]? = nil,
        mode: String? = nil, tail: TailUpdate? = nil
    ) {
        self.sampling = sampling
        self.propagation = propagation
        self.customTags = customTags
        self.excludePaths = excludePaths
        self.mode = mode
        self.tail = tail
    }

    init(_ spec: TelemetrySpec) {
        sampling = spec.samplingPercent
        propagation = spec.propagation.map(\.rawValue)
        customTags = spec.customTags
        excludePaths = spec.excludePaths
        mode = spec.mode.rawValue
        var tail = TailUpdate(
            keepPercent: spec.tail.keepPercent, slowerThan: "\(spec.tail.slowerThanMs)ms",
            decisionWait: Self.text(spec.tail.decisionWait), policyFile: spec.tail.policyFile)
        tail.summary = spec.tail.summary
        self.tail = tail
    }

    static func text(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return attoseconds == 0 ? "\(seconds)s" : "\(seconds * 1000 + attoseconds / 1_000_000_000_000_000)ms"
    }

    func apply(to spec: inout TelemetrySpec) throws(MeshFileError) {
        if let sampling {
            guard (0...100).contains(sampling) else {
                throw MeshFileError(file: "telemetry", line: nil, column: nil, field: "sampling", message: "must be between 0 and 100, got \(sampling)", hint: nil)
            }
            spec.samplingPercent = sampling
        }
        if let propagation {
            guard let formats = PropagationFormat.parseList(propagation.joined(separator: ",")) else {
                throw MeshFileError(file: "telemetry", line: nil, column: nil, field: "propagation", message: "use w3c, b3multi, b3single and/or sw8", hint: nil)
            }
            spec.propagation = formats
        }
        if let customTags { spec.customTags = customTags }
        if let excludePaths { spec.excludePaths = excludePaths }
        if let mode {
            guard let parsed = TelemetryMode(rawValue: mode) else {
                throw MeshFileError(file: "telemetry", line: nil, column: nil, field: "mode", message: "must be head or tail, got '\(mode)'", hint: nil)
            }
            spec.mode = parsed
        }
        if let tail {
            if let percent = tail.keepPercent {
                guard (0...100).contains(percent) else {
                    throw MeshFileError(file: "telemetry", line: nil, column: nil, field: "tail.keepPercent", message: "must be between 0 and 100, got \(percent)", hint: nil)
                }
                spec.tail.keepPercent = percent
                spec.tail.policyFile = nil
            }
            if let text = tail.slowerThan {
                spec.tail.slowerThanMs = Int64(try Self.duration(text, field: "tail.slowerThan") / 1_000_000)
                spec.tail.policyFile = nil
            }
            if let text = tail.decisionWait { spec.tail.decisionWait = .nanoseconds(Int64(try Self.duration(text, field: "tail.decisionWait"))) }
            if let file = tail.policyFile { spec.tail.policyFile = file.isEmpty ? nil : file }
        }
    }

    private static func duration(_ text: String, field: String) throws(MeshFileError) -> UInt64 {
        guard let nanos = GoDuration.parseNanos(text), nanos >= 1_000_000, nanos < UInt64(Int64.max) else {
            throw MeshFileError(file: "telemetry", line: nil, column: nil, field: field, message: "expected a duration of at least 1ms like 500ms or 10s, got '\(text)'", hint: nil)
        }
        return nanos
    }
}
