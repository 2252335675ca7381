import ArgumentParser
import DemoServices
import Foundation
import Logging
import SidecarCLI

extension DemoRole: ExpressibleByArgument {}

/// One service of the demo mesh, started by `meshtrace up`/`meshtrace demo` as its own process
/// behind its own sidecar. Hidden: users run the mesh, not its parts.
struct DemoServiceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-service",
        abstract: "Run one demo mesh service (frontend, backend or database).",
        discussion: """
            Upstreams come from BACKEND_URL / DATABASE_URL (default http://backend, http://database); \
            with HTTP_PROXY set, calls go through that proxy (the sidecar) in absolute form. The \
            backend exports its compute-report span to --collector or $MESHTRACE_COLLECTOR. \
            SIGTERM/SIGINT stop it cleanly.
            """,
        shouldDisplay: false
    )

    @Argument(help: "frontend, backend or database.")
    var role: DemoRole

    @Option(help: "Port to listen on; 0 picks a free one (the log line names it).")
    var port = 0

    @Option(help: "Address to bind.")
    var host = "127.0.0.1"

    @Flag(help: "backend: do not forward trace headers to the database.")
    var broken = false

    @Flag(name: .customLong("record-causality"), help: "backend with --broken: name the request each database call serves (x-demo-caused-by), for measuring parent inference.")
    var recordCausality = false

    @Option(name: .customLong("service-name"), help: "Service name on the backend's business span (default: the role).")
    var serviceName: String?

    @Option(help: "Collector URL for the backend's business span (default: $MESHTRACE_COLLECTOR).")
    var collector: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical (default: $MESHTRACE_LOG_LEVEL, which the mesh sets to its own level, else info).")
    var logLevelFlag: String?

    /// The mesh passes its own level down, so `demo` (warning) does not show each service's
    /// framework start-up lines at info.
    var logLevel: String { logLevelFlag ?? ProcessInfo.processInfo.environment["MESHTRACE_LOG_LEVEL"] ?? "info" }

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535, got \(port)") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        let logger = bootstrapLogging(logLevel, label: "meshtrace.demo.\(role.rawValue)")
        try await DemoService.run(role: role, port: port, host: host, broken: broken, recordsCausality: recordCausality, serviceName: serviceName, collector: collector, logger: logger)
    }
}
