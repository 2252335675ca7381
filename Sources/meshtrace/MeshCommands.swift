import ArgumentParser
import Foundation
import Logging
import MeshRunner
import ServiceLifecycle
import SidecarCLI
import SidecarProxy
import TraceExport

/// The running binary, for `${MESHTRACE}` in service commands and the demo's services.
func selfExecutable() -> String {
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
}

/// Prints what a person needs after start: where to look, and the table of services.
func printReady(_ ready: MeshReady, uiURL: String?) {
    var lines: [String] = []
    if let uiURL { lines.append("UI:       \(uiURL)") }
    if let gateway = ready.gatewayURL { lines.append("gateway:  \(gateway)") }
    if let otlp = ready.otlpEndpoint { lines.append("OTLP:     \(otlp)   (gRPC; OTEL_EXPORTER_OTLP_ENDPOINT of every service)") }
    if let prometheus = ready.prometheusURL { lines.append("prometheus: \(prometheus)   (scraping every sidecar)") }
    if let note = ready.prometheusNote { lines.append("prometheus: not started: \(note)") }
    lines.append("control:  \(ready.controlURL)   (meshtrace status | telemetry set --sampling N | proxy-config SERVICE)")
    lines.append("")
    lines.append(ServiceTable.render(ready.services))
    print(lines.joined(separator: "\n"))
    fflush(nil)
}

enum ServiceTable {
    static func render(_ services: [ServiceState]) -> String {
        // Replicas show as NAME-1 … NAME-N; EJECTED says how often the callers' outlier detection
        // took each out of rotation, and whether it is out now.
        let replicated = services.contains { $0.service != nil }
        let header = ["SERVICE", "HEALTH", "PID", "APP PORT", "SIDECAR IN", "SIDECAR OUT", "RPS (10s)"] + (replicated ? ["EJECTED"] : []) + ["RESTARTS"]
        let rows = services.map { s in
            [s.name, s.healthy ? "healthy" : s.phase, s.pid.map(String.init) ?? "-", s.appPort > 0 ? String(s.appPort) : "-",
             s.inbound ?? "-", s.outbound ?? "-", String(format: "%.1f", s.requestsPerSecond)]
                + (replicated ? [ejectedText(s)] : []) + [String(s.restarts)]
        }
        let widths = header.indices.map { i in ([header[i]] + rows.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            // The last column unpadded: no trailing blanks for a terminal or a copy to wrap.
            cells.enumerated().map { $0 == cells.count - 1 ? $1 : $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func ejectedText(_ s: ServiceState) -> String {
        guard let ejections = s.ejections, s.service != nil else { return "-" }
        if s.ejected == true { return "now (\(ejections)x)" }
        return ejections == 0 ? "no" : "\(ejections)x, back"
    }
}

struct UpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Run a local mesh from mesh.yaml: collector, sidecars, gateway and your services.",
        discussion: """
            Telemetry settings (sampling, propagation, custom tags, excluded paths) change live: edit \
            and save mesh.yaml, or run `meshtrace telemetry set`. Ctrl-C stops every service and sidecar.
            """
    )

    @Option(name: .shortAndLong, help: "The mesh file.")
    var file = "mesh.yaml"

    @Option(name: .customLong("control-port"), help: "Control-plane API port (0 picks one).")
    var controlPort = 15100

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    @Flag(help: "Run Prometheus beside the mesh, scraping every sidecar (as `prometheus: true` in the mesh file).")
    var prometheus = false

    @Option(name: .customLong("prometheus-port"), help: "Prometheus's port with --prometheus (default: the mesh file's, else a free one).")
    var prometheusPort: Int?

    func run() async throws {
        let text: String
        do {
            text = try String(contentsOfFile: file, encoding: .utf8)
        } catch {
            throw ValidationError("cannot read \(file): \(error.localizedDescription). Start from examples/mesh.yaml.")
        }
        var mesh: MeshFile
        do {
            mesh = try MeshFileParser(fileName: file).parse(text)
        } catch {
            FileHandle.standardError.write(Data("error: \(error.description)\n".utf8))
            throw ExitCode(2)
        }
        if prometheus || prometheusPort != nil {
            if let prometheusPort, !(0...65535).contains(prometheusPort) { throw ValidationError("--prometheus-port must be between 0 and 65535") }
            var spec = mesh.prometheus ?? PrometheusSpec()
            if let prometheusPort { spec.port = prometheusPort }
            mesh.prometheus = spec
        }
        let logger = bootstrapLogging(logLevel, label: "meshtrace.mesh")
        FileDescriptorBudget.raiseSoftLimit()  // every connection is a descriptor; children inherit it
        var options = MeshOptions(executable: selfExecutable())
        options.controlPort = controlPort
        options.watchFile = file
        options.stateDirectory = MeshStateFile.directory()
        options.logLevel = logLevel
        // Where the collector keeps traces when mesh.yaml names no collector.dataDir: the
        // same default as `meshtrace collector` ($MESHTRACE_DATA_DIR, else ~/.local/share/meshtrace).
        options.defaultDataDir = DataDirectory.resolve(nil)
        let runtime = MeshRuntime(file: mesh, options: options, logger: logger, gracefulShutdownSignals: [.sigterm, .sigint]) { ready in
            printReady(ready, uiURL: ready.queryURL.map { $0 + "/" })
        }
        try await runtime.run()
    }
}

/// An error the CLI prints as is, without the usage text (the command line was fine).
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Finds the running mesh's control API: `--control`, else the state file of the mesh named
/// by `--mesh`, else of the only mesh running.
struct ControlOptions: ParsableArguments {
    @Option(name: .customLong("mesh"), help: "The running mesh to talk to, by its name (default: the only one running).")
    var mesh: String?

    @Option(name: .customLong("control"), help: "Control-plane URL of the running mesh (default: found from `meshtrace up`'s state file).")
    var control: String?

    func url(_ path: String) throws -> URL {
        let base: String
        if let control {
            base = control
        } else {
            do {
                base = try MeshStateFile.select(mesh: mesh, directory: MeshStateFile.directory()).contents.controlURL
            } catch {
                throw CLIError(error.description)
            }
        }
        guard let url = URL(string: base + path) else { throw ValidationError("bad control URL \(base)") }
        return url
    }

    func request(_ path: String, method: OneShotHTTPClient.Method = .GET, body: Data? = nil) async throws -> Data {
        let url = try url(path).absoluteString
        let response: OneShotHTTPClient.Response
        do {
            // Control-plane calls are quick; a minute only bounds a mesh that stopped answering.
            response = try await OneShotHTTPClient.send(
                method, url: url, body: body.map { [UInt8]($0) }, contentType: body == nil ? nil : "application/json",
                timeout: .seconds(60))
        } catch {
            throw CLIError("cannot reach the mesh at \(url): \(error.localizedDescription); is `meshtrace up` still running?")
        }
        let data = Data(response.body)
        guard response.status == 200 else {
            let message = (try? JSONDecoder().decode([String: String].self, from: data))?["error"] ?? String(decoding: data, as: UTF8.self)
            throw CLIError("the mesh answered \(response.status): \(message)")
        }
        return data
    }
}

struct TelemetryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "telemetry",
        abstract: "Show or change the running mesh's telemetry settings.",
        subcommands: [Set.self, Show.self],
        defaultSubcommand: Show.self  // a bare `meshtrace telemetry` shows the settings
    )

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Change sampling, propagation or excluded paths in every sidecar, live.")

        @OptionGroup var control: ControlOptions
        @Option(help: "Percentage of new traces to sample, 0-100.") var sampling: Double?
        @Option(help: "Formats to inject: comma list of w3c, b3multi, b3single, sw8.") var propagation: String?
        @Option(name: .customLong("exclude-paths"), help: "Comma list of paths not traced.") var excludePaths: String?

        func run() async throws {
            let update = TelemetryUpdate(
                sampling: sampling, propagation: propagation?.split(separator: ",").map(String.init),
                excludePaths: excludePaths?.split(separator: ",").map(String.init))
            guard update != TelemetryUpdate() else { throw ValidationError("nothing to change: give --sampling, --propagation or --exclude-paths") }
            let data = try await control.request("/mesh/telemetry", method: .POST, body: try JSONEncoder().encode(update))
            print("applied to every sidecar: " + String(decoding: data, as: UTF8.self))
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the telemetry settings in force.")
        @OptionGroup var control: ControlOptions
        func run() async throws {
            print(String(decoding: try await control.request("/mesh/telemetry"), as: UTF8.self))
        }
    }
}

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "List the mesh's services, health, ports and request rates.")
    @OptionGroup var control: ControlOptions
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let data = try await control.request("/mesh/status")
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let status = try JSONDecoder().decode(MeshStatus.self, from: data)
        print("mesh \(status.mesh): sampling \(status.telemetry.sampling.map { String(format: "%g", $0) } ?? "?")%, "
              + "propagation \((status.telemetry.propagation ?? []).joined(separator: ","))\n")
        print(ServiceTable.render(status.services))
    }
}

struct ProxyConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy-config", abstract: "Print a sidecar's effective configuration, like `istioctl proxy-config`.")
    @OptionGroup var control: ControlOptions
    @Argument(help: "The service whose sidecar to show (or 'gateway').") var service: String

    func run() async throws {
        let data = try await control.request("/mesh/proxy-config/\(service)")
        // Pretty-print for people; keys in a stable order.
        if let object = try? JSONSerialization.jsonObject(with: data),
           let pretty = try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]) {
            print(String(decoding: pretty, as: UTF8.self))
        } else {
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
