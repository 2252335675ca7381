import Foundation

extension MeshCore {
    /// The supervisor that runs one service's process: its command line and environment.
    /// The place to change when a service's process is started another way (in a namespace).
    /// - Parameter instance: which replica (`service.instanceNames`): its port and sidecars.
    func makeSupervisor(for service: ServiceSpec, instance: String, started: StartedSidecars, printer: LogPrinter,
                        processGuard: MeshGuard?) -> ServiceSupervisor {
        if let inPod = capturedSupervisor(for: service, printer: printer, processGuard: processGuard) { return inPod }
        let port = state.all.first { $0.name == instance }?.appPort ?? 0
        return ServiceSupervisor(
            name: instance, arguments: arguments(for: service, port: port),
            environment: environment(for: service, instance: instance, outbound: started.outbound[instance], egress: started.egress[instance] ?? [:]),
            workingDirectory: service.workingDir, output: printer, logger: logger, processGuard: processGuard)
    }

    func arguments(for service: ServiceSpec, port: Int) -> [String] {
        ([service.command] + service.args).map { substitute($0, port: port) }
    }

    private func substitute(_ text: String, port: Int) -> String {
        text.replacingOccurrences(of: "${PORT}", with: String(port)).replacingOccurrences(of: "${MESHTRACE}", with: options.executable)
    }

    /// The process environment plus: PORT, HTTP_PROXY toward its outbound sidecar, `<NAME>_URL`
    /// per upstream, where MeshtraceTracing should export app spans, and the OpenTelemetry SDK
    /// settings (OTLP/gRPC endpoint and protocol, service name) so an SDK in the app just works.
    /// A value the user already set in the environment is kept.
    func environment(for service: ServiceSpec, instance: String? = nil, outbound: String?, egress: [String: String]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        let instance = instance ?? service.name
        let port = state.all.first { $0.name == instance }?.appPort ?? 0
        env["PORT"] = String(port)
        env["MESHTRACE_SERVICE"] = service.name
        env["MESHTRACE_INSTANCE"] = instance
        env["MESHTRACE_COLLECTOR"] = collectorURL
        if let otlpEndpoint, env["OTEL_EXPORTER_OTLP_ENDPOINT"] == nil {
            // The protocol is named with it: SDKs that default to http/protobuf (Node, the Java
            // agent) would otherwise POST /v1/traces to the gRPC port.
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlpEndpoint
            if env["OTEL_EXPORTER_OTLP_PROTOCOL"] == nil { env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "grpc" }
        }
        if env["OTEL_SERVICE_NAME"] == nil { env["OTEL_SERVICE_NAME"] = service.name }
        if let level = options.logLevel { env["MESHTRACE_LOG_LEVEL"] = level }
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
}

/// Checks, before anything starts, that each service's command can be started: a typo in
/// `command:` or `workingDir:` fails `up` at once with the key, not in a restart loop.
enum ServicePreflight {
    static func check(_ services: [ServiceSpec], environment: [String: String] = ProcessInfo.processInfo.environment) throws(MeshStartError) {
        for (i, service) in services.enumerated() {
            var directory = FileManager.default.currentDirectoryPath
            if let workingDir = service.workingDir {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: workingDir, isDirectory: &isDirectory), isDirectory.boolValue else {
                    throw MeshStartError("services[\(i)].workingDir: '\(workingDir)' is not a directory (service \(service.name))")
                }
                directory = workingDir.hasPrefix("/") ? workingDir : directory + "/" + workingDir
            }
            // ${MESHTRACE} is this binary; other variables are the user's to get right.
            guard !service.command.contains("${") else { continue }
            if find(service.command, in: directory, path: service.env["PATH"] ?? environment["PATH"] ?? "/usr/bin:/bin") == nil {
                throw MeshStartError("services[\(i)].command: cannot find '\(service.command)' (service \(service.name))"
                                     + (service.command.contains("/") ? "" : " in PATH"))
            }
        }
    }

    /// The executable `posix_spawnp` would run, or nil.
    static func find(_ command: String, in directory: String, path: String) -> String? {
        if command.contains("/") {
            let full = command.hasPrefix("/") ? command : directory + "/" + command
            return FileManager.default.isExecutableFile(atPath: full) ? full : nil
        }
        for dir in path.split(separator: ":") {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + command
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
