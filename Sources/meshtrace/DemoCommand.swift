import ArgumentParser
import Collector
import DemoServices
import Foundation
import Logging
import MeshRunner
import ServiceLifecycle
import SidecarCLI
import SidecarProxy
import Synchronization
import TraceExport

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the built-in three-service mesh (gateway → frontend → backend → database) with traffic.",
        discussion: """
            The services forward trace headers in a few lines, as apps behind Istio must. With --broken, \
            backend forgets to, and its calls to database start separate traces: see `meshtrace analyze`.
            """
    )

    @Flag(help: "Run the variant where backend does not forward trace headers.") var broken = false
    @Flag(name: .customLong("infer-parent"), help: "Sidecars link calls without trace context to the one inbound request in flight (telemetry.inferParent).")
    var inferParent = false
    @Flag(name: .customLong("record-causality"), help: "With --broken: backend names the request each database call serves, tagged demo.caused_by on spans (for measuring parent inference).")
    var recordCausality = false
    @Option(help: "Requests the traffic generator sends through the gateway (0 = none).") var requests = 30
    @Option(help: "Requests per second.") var rate = 10.0
    @Option(name: .customLong("data-dir"), help: "Keep traces here (default: a temporary directory removed on exit).") var dataDir: String?
    @Option(name: .customLong("query-port"), help: "UI and query API port.") var queryPort = 16686
    @Option(name: .customLong("zipkin-port"), help: "Zipkin ingest and API port.") var zipkinPort = 9411
    @Option(name: .customLong("otlp-http-port"), help: "OTLP/HTTP ingest port.") var otlpPort = 4318
    @Option(name: .customLong("otlp-grpc-port"), parsing: .unconditional, help: "OTLP/gRPC ingest port (-1: off; default 4317, or 0 when --otlp-http-port is 0).")
    var otlpGRPCPort: Int?
    @Option(name: .customLong("collector-admin-port"), help: "Collector /metrics port.") var collectorAdminPort = 14269
    @Option(name: .customLong("gateway-port"), help: "Ingress gateway port.") var gatewayPort = 8080
    @Option(name: .customLong("control-port"), help: "Control-plane API port.") var controlPort = 15100
    @Option(help: "Sampling percentage.") var sampling = 100.0
    @Flag(help: "Tail-based sampling: sidecars send every span, the collector keeps errors, slow traces and --keep-percent of the rest; the traffic includes a few failing and slow requests.")
    var tail = false
    @Option(name: .customLong("keep-percent"), help: "With --tail: percent of the other traces kept.") var keepPercent = 5.0
    @Option(name: .customLong("slower-than"), help: "With --tail: traces at least this long are kept (e.g. 500ms).") var slowerThan = "500ms"
    @Option(name: .customLong("decision-wait"), help: "With --tail: decide this long after a trace's first span, or once it is complete.") var decisionWait = "10s"
    @Flag(help: "Run Prometheus beside the mesh, scraping every sidecar (needs `prometheus` installed).") var prometheus = false
    @Flag(help: "Transparent capture: each service in a network namespace of its own, calling http://backend:8080 with a plain client, no proxy (Linux, root).")
    var capture = false
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel = "warning"

    /// 4317 unless told, or a free one when the other ports are asked to be free.
    var grpcPort: Int { otlpGRPCPort ?? (otlpPort == 0 ? 0 : 4317) }

    func validate() throws {
        guard (-1...65535).contains(grpcPort) else { throw ValidationError("--otlp-grpc-port must be between 0 and 65535, or -1 for off") }
        let ports = [("--query-port", queryPort), ("--zipkin-port", zipkinPort), ("--otlp-http-port", otlpPort), ("--otlp-grpc-port", max(0, grpcPort)),
                     ("--collector-admin-port", collectorAdminPort), ("--gateway-port", gatewayPort), ("--control-port", controlPort)]
        for (flag, port) in ports {
            guard (0...65535).contains(port) else { throw ValidationError("\(flag) must be between 0 and 65535") }
            if port != 0 && !PortAllocator.isFree(port) {
                throw ValidationError("port \(port) is already in use; pick another with \(flag) (or 0 for any free port)")
            }
        }
        guard requests >= 0, rate > 0 else { throw ValidationError("--requests must be >= 0 and --rate > 0") }
        guard (0...100).contains(sampling) else { throw ValidationError("--sampling must be between 0 and 100") }
        guard (0...100).contains(keepPercent) else { throw ValidationError("--keep-percent must be between 0 and 100") }
        guard let slow = GoDuration.parseNanos(slowerThan), slow >= 1_000_000, slow <= 10_000_000_000 else {
            throw ValidationError("--slower-than must be a duration from 1ms to 10s like 500ms, got '\(slowerThan)'")
        }
        guard let wait = GoDuration.parseNanos(decisionWait), wait >= 1_000_000, wait < UInt64(Int64.max) else {
            throw ValidationError("--decision-wait must be a duration like 10s or 500ms, got '\(decisionWait)'")
        }
        if capture, let reason = CaptureSupport.unavailable() {
            throw ValidationError("--capture \(reason); run `sudo meshtrace demo --capture`, or leave out --capture")
        }
    }

    var tailSpec: TailSamplingSpec {
        var spec = TailSamplingSpec()
        spec.keepPercent = keepPercent
        spec.slowerThanMs = Int64((GoDuration.parseNanos(slowerThan) ?? 500_000_000) / 1_000_000)
        spec.decisionWait = .nanoseconds(Int64(GoDuration.parseNanos(decisionWait) ?? 10_000_000_000))
        return spec
    }

    func meshFile(dataDir: String) -> MeshFile {
        func service(_ role: String, upstreams: [String], extra: [String] = []) -> ServiceSpec {
            // In a pod the app listens on its pod address too: captured calls arrive there.
            let host = capture ? ["--host", "0.0.0.0"] : []
            return ServiceSpec(name: role, command: "${MESHTRACE}", args: ["demo-service", role, "--port", "${PORT}"] + host + extra,
                               upstreams: upstreams, healthPath: "/healthz")
        }
        var telemetry = TelemetrySpec(samplingPercent: sampling)
        telemetry.inferParent = inferParent
        if tail {
            telemetry.mode = .tail
            telemetry.tail = tailSpec
        }
        // Asked for, the broken backend names the request it is serving in its own header (no
        // trace context in it): recorded on spans so a test can check inferred links against the truth.
        if recordCausality { telemetry.customTags = ["demo.caused_by": "header:\(DemoCausality.header)"] }
        let backendFlags = (broken ? ["--broken"] : []) + (broken && recordCausality ? ["--record-causality"] : [])
        var file = MeshFile(
            name: broken ? "demo-broken" : "demo",
            services: [
                service("frontend", upstreams: ["backend"]),
                service("backend", upstreams: ["database"], extra: backendFlags),
                service("database", upstreams: []),
            ],
            gateway: GatewaySpec(port: gatewayPort, routes: [("/", "frontend")]),
            telemetry: telemetry,
            collector: CollectorSpec(
                queryPort: queryPort, zipkinPort: zipkinPort, otlpPort: otlpPort, otlpGRPCPort: grpcPort, adminPort: collectorAdminPort,
                dataDir: dataDir),
            prometheus: prometheus ? PrometheusSpec() : nil)
        file.capture = capture ? .netns : .off
        return file
    }

    func run() async throws {
        let logger = bootstrapLogging(logLevel, label: "meshtrace.mesh")
        FileDescriptorBudget.raiseSoftLimit()  // every connection is a descriptor; children inherit it
        let temporary = dataDir == nil
        let directory = dataDir ?? (NSTemporaryDirectory() + "meshtrace-demo-\(ProcessInfo.processInfo.processIdentifier)")
        defer { if temporary { try? FileManager.default.removeItem(atPath: directory) } }
        var options = MeshOptions(executable: selfExecutable())
        options.controlPort = controlPort
        options.stateDirectory = MeshStateFile.directory()
        options.logLevel = logLevel
        options.settingNames = [
            "collector.queryPort": "--query-port", "collector.zipkinPort": "--zipkin-port", "collector.otlpPort": "--otlp-http-port", "collector.otlpGrpcPort": "--otlp-grpc-port",
            "collector.adminPort": "--collector-admin-port", "gateway.port": "--gateway-port",
        ]
        let requests = self.requests
        let rate = self.rate
        let faults = tail ? DemoTraffic.Faults(slowMs: Int(tailSpec.slowerThanMs) + 200) : nil
        let traffic = Mutex<Task<Void, Never>?>(nil)
        print("starting the demo mesh\(broken ? " (broken: backend does not forward trace headers)" : "")… data dir: \(directory)\(temporary ? " (temporary)" : "")")
        if tail { print("tail sampling: the collector keeps \(tailSpec.summary)") }
        fflush(nil)
        let runtime = MeshRuntime(file: meshFile(dataDir: directory), options: options, logger: logger, gracefulShutdownSignals: [.sigterm, .sigint]) { ready in
            let ui = ready.queryURL.map { $0 + "/" }
            printReady(ready, uiURL: ui)
            guard requests > 0, let gateway = ready.gatewayURL, let query = ready.queryURL else { return }
            traffic.withLock { $0 = Task { await DemoTraffic.run(gateway: gateway, query: query, requests: requests, rate: rate, faults: faults) } }
        }
        try await runtime.run()
        traffic.withLock { $0?.cancel() }
    }
}

/// The demo's traffic: GET /api/reports/N through the gateway at a steady rate, then one
/// example trace id a person can open.
enum DemoTraffic {
    /// Long enough that a slow first request (services still warming up) counts as answered.
    static let requestTimeout = Duration.seconds(60)

    /// Tail mode's occasional trouble: one request in `failEvery` fails, one in `slowEvery` is slow.
    struct Faults: Sendable {
        var slowMs: Int
        var failEvery = 10
        var slowEvery = 15

        func reportID(_ i: Int) -> String {
            if i % failEvery == failEvery - 1 { return DemoFault.reportID(failing: i) }
            if i % slowEvery == slowEvery - 1 { return DemoFault.reportID(slowMs: slowMs, i) }
            return String(i % 50 + 1)
        }
    }

    static func run(gateway: String, query: String, requests: Int, rate: Double, faults: Faults? = nil) async {
        var statuses: [Int: Int] = [:]
        let interval = Duration.milliseconds(Int(1000 / rate))
        var next = ContinuousClock.now
        print("sending \(requests) requests at \(rate)/s to \(gateway)/api/reports/{id} …"
              + (faults.map { " (one in \($0.failEvery) fails, one in \($0.slowEvery) takes \($0.slowMs) ms)" } ?? ""))
        fflush(nil)
        for i in 0..<requests where !Task.isCancelled {
            try? await Task.sleep(until: next)  // pacing the load, not waiting for another task
            next += interval
            let id = faults?.reportID(i) ?? String(i % 50 + 1)
            guard let url = URL(string: "\(gateway)/api/reports/\(id)") else { continue }
            let status = (try? await OneShotHTTPClient.send(.GET, url: url.absoluteString, timeout: requestTimeout))?.status ?? 0
            statuses[status, default: 0] += 1
        }
        let summary = statuses.sorted { $0.key < $1.key }.map { "\($0.key == 0 ? "failed" : String($0.key)): \($0.value)" }.joined(separator: ", ")
        print("traffic done: \(summary)")
        if let id = await exampleTrace(query: query) {
            print("example trace: \(query)/trace/\(id)")
            print("the mesh keeps running: open the UI, or try `meshtrace status` in another terminal; Ctrl-C stops it")
        } else {
            print("no trace arrived yet: check `meshtrace status` and the service logs above")
        }
        fflush(nil)
    }

    /// The most recent gateway trace, once its spans are in (sidecars export about once a second).
    static func exampleTrace(query: String) async -> String? {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if let url = URL(string: "\(query)/api/traces?service=gateway&limit=5&lookback=1h"),
               let response = try? await OneShotHTTPClient.send(.GET, url: url.absoluteString, timeout: requestTimeout),
               let body = try? JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any],
               let traces = body["data"] as? [[String: Any]] {
                let best = traces.max { ($0["spans"] as? [Any])?.count ?? 0 < ($1["spans"] as? [Any])?.count ?? 0 }
                if let best, let spans = best["spans"] as? [Any], spans.count >= 3, let id = best["traceID"] as? String {
                    return id
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return nil
    }
}
