import Collector
import ConfigYAML
import SidecarProxy
import TraceModel
import Yams

/// A problem in mesh.yaml (the type is shared with the policy file's reader).
public typealias MeshFileError = ConfigFileError

/// Reads mesh.yaml through Yams' node tree rather than Codable, so every error can name the
/// exact line, column and field — the thing people need when a config file is wrong.
public struct MeshFileParser {
    public var fileName: String

    public init(fileName: String = "mesh.yaml") {
        self.fileName = fileName
    }

    public func parse(_ text: String) throws(MeshFileError) -> MeshFile {
        let root: Node
        do {
            guard let node = try Yams.compose(yaml: text) else {
                throw MeshFileError(file: fileName, line: 1, column: 1, field: "", message: "the file is empty",
                                    hint: "start from examples/mesh.yaml")
            }
            root = node
        } catch let error as MeshFileError {
            throw error
        } catch let error as YamlError {
            throw yamlSyntaxError(error)
        } catch {
            throw MeshFileError(file: fileName, line: nil, column: nil, field: "", message: "cannot read YAML: \(error)", hint: nil)
        }
        return try mesh(root)
    }

    private func yamlSyntaxError(_ error: YamlError) -> MeshFileError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return MeshFileError(file: fileName, line: mark.line, column: mark.column, field: "", message: "YAML syntax error: \(problem)",
                                 hint: "check indentation (spaces, not tabs) and that every key ends with ':'")
        default:
            return MeshFileError(file: fileName, line: nil, column: nil, field: "", message: "YAML error: \(error)", hint: nil)
        }
    }

    // MARK: helpers

    private var reader: YAMLFieldReader { YAMLFieldReader(fileName: fileName) }

    private func fail(_ node: Node?, _ field: String, _ message: String, hint: String? = nil) -> MeshFileError {
        reader.fail(node, field, message, hint: hint)
    }

    private func mapping(_ node: Node, _ field: String, allowed: Set<String>) throws(MeshFileError) -> [(key: String, keyNode: Node, value: Node)] {
        try reader.mapping(node, field, allowed: allowed)
    }

    private func describe(_ node: Node) -> String { reader.describe(node) }

    private func string(_ node: Node, _ field: String) throws(MeshFileError) -> String { try reader.string(node, field) }

    private func int(_ node: Node, _ field: String, range: ClosedRange<Int>, hint: String? = nil) throws(MeshFileError) -> Int {
        guard case .scalar(let s) = node, let value = Int(s.string) else {
            throw fail(node, field, "expected a whole number, got \(describe(node))", hint: hint)
        }
        guard range.contains(value) else { throw fail(node, field, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)", hint: hint) }
        return value
    }

    private func double(_ node: Node, _ field: String, range: ClosedRange<Double>) throws(MeshFileError) -> Double {
        guard case .scalar(let s) = node, let value = Double(s.string.hasSuffix("%") ? String(s.string.dropLast()) : s.string) else {
            throw fail(node, field, "expected a number, got \(describe(node))")
        }
        guard range.contains(value) else { throw fail(node, field, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)") }
        return value
    }

    private func bool(_ node: Node, _ field: String) throws(MeshFileError) -> Bool { try reader.bool(node, field) }

    private func strings(_ node: Node, _ field: String) throws(MeshFileError) -> [String] {
        if case .scalar(let s) = node { return s.string.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty } }
        guard let seq = node.sequence else { throw fail(node, field, "expected a list, got \(describe(node))") }
        var out: [String] = []
        for (i, item) in seq.enumerated() { out.append(try string(item, "\(field)[\(i)]")) }
        return out
    }

    private func stringMap(_ node: Node, _ field: String) throws(MeshFileError) -> [String: String] {
        guard let map = node.mapping else { throw fail(node, field, "expected a mapping of NAME: value, got \(describe(node))") }
        var out: [String: String] = [:]
        for (k, v) in map {
            let key = try string(k, field)
            out[key] = try string(v, "\(field).\(key)")
        }
        return out
    }

    // MARK: sections

    private func mesh(_ root: Node) throws(MeshFileError) -> MeshFile {
        var file = MeshFile(services: [])
        var servicesNode: Node?
        for (key, _, value) in try mapping(root, "", allowed: ["name", "services", "gateway", "telemetry", "collector", "prometheus", "capture"]) {
            switch key {
            case "name": file.name = try string(value, "name")
            case "services": servicesNode = value
            case "gateway": file.gateway = try gateway(value)
            case "telemetry": file.telemetry = try telemetry(value)
            case "collector": file.collector = try collector(value)
            case "prometheus": file.prometheus = try prometheus(value)
            case "capture": file.capture = try capture(value)
            default: break
            }
        }
        guard let servicesNode else {
            throw fail(root, "services", "no services are defined", hint: "add a 'services:' list; see examples/mesh.yaml")
        }
        file.services = try services(servicesNode)
        try crossCheck(file, servicesNode: servicesNode)
        return file
    }

    private func services(_ node: Node) throws(MeshFileError) -> [ServiceSpec] {
        guard let seq = node.sequence else {
            throw fail(node, "services", "expected a list of services (each item starts with '- name:')", hint: nil)
        }
        guard seq.count > 0 else { throw fail(node, "services", "the list is empty") }
        var out: [ServiceSpec] = []
        for (i, item) in seq.enumerated() {
            let field = "services[\(i)]"
            // No `health:` means healthy once the port accepts connections: an app without a
            // /healthz route (most of them) would otherwise hold up the start for a minute.
            var spec = ServiceSpec(name: "", command: "", healthPath: ServiceSpec.tcpHealth)
            var hasCommand = false
            var replicasNode: Node?
            for (key, _, value) in try mapping(item, field, allowed: ["name", "command", "args", "env", "workingDir", "port", "upstreams", "health", "replicas", "routes", "metricsPort"]) {
                let path = "\(field).\(key)"
                switch key {
                case "name":
                    spec.name = try string(value, path)
                    guard spec.name.range(of: "^[a-z][a-z0-9-]*$", options: .regularExpression) != nil else {
                        throw fail(value, path, "'\(spec.name)' is not a valid service name", hint: "use lower-case letters, digits and '-', starting with a letter (it becomes a host name)")
                    }
                case "command":
                    spec.command = try string(value, path)
                    hasCommand = !spec.command.isEmpty
                case "args": spec.args = try strings(value, path)
                case "env": spec.env = try stringMap(value, path)
                case "workingDir": spec.workingDir = try string(value, path)
                case "port": spec.port = try int(value, path, range: 0...65535, hint: "0 picks a free port and passes it to the app as $PORT")
                case "metricsPort": spec.metricsPort = try int(value, path, range: 0...65535, hint: "0 picks a free port; Prometheus finds it through the control plane")
                case "upstreams": spec.upstreams = try strings(value, path).map { $0.lowercased() }
                case "health": spec.healthPath = try string(value, path)
                case "routes":
                    spec.routes = try strings(value, path)
                    for (j, route) in spec.routes.enumerated() {
                        do {
                            _ = try RouteTemplate(route)
                        } catch {
                            throw fail(value.sequence?[j] ?? value, "\(path)[\(j)]", error.description.replacingOccurrences(of: "route template ", with: ""),
                                       hint: "e.g. routes: [\"/api/reports/{id}\", \"/users/{user}/orders/{order}\"]")
                        }
                    }
                case "replicas":
                    spec.replicas = try int(value, path, range: 1...64, hint: "the number of processes of this service, e.g. replicas: 3")
                    replicasNode = value
                default: break
                }
            }
            guard !spec.name.isEmpty else { throw fail(item, "\(field).name", "every service needs a name") }
            if spec.replicas > 1, spec.port != 0 || spec.metricsPort != 0 {
                // N processes cannot share one fixed port: each replica gets a free one as $PORT.
                throw fail(replicasNode ?? item, "\(field).replicas",
                           "\(spec.replicas) replicas cannot share the fixed \(spec.port != 0 ? "port \(spec.port)" : "metricsPort \(spec.metricsPort)")",
                           hint: "leave port and metricsPort out (or 0): each replica gets a free port, passed as ${PORT}")
            }
            guard hasCommand else {
                throw fail(item, "\(field).command", "service '\(spec.name)' has no command", hint: "e.g. command: python3 with args: [app.py, --port, \"${PORT}\"]")
            }
            if let health = spec.healthPath, !health.hasPrefix("/"), health != ServiceSpec.tcpHealth {
                throw fail(item, "\(field).health", "health path must start with '/', got '\(health)'",
                           hint: "or \(ServiceSpec.tcpHealth) for an app that does not answer HTTP/1 (a gRPC server): healthy once its port accepts connections")
            }
            out.append(spec)
        }
        return out
    }

    private func gateway(_ node: Node) throws(MeshFileError) -> GatewaySpec {
        var spec = GatewaySpec(routes: [])
        for (key, _, value) in try mapping(node, "gateway", allowed: ["port", "routes", "metricsPort"]) {
            switch key {
            case "port": spec.port = try int(value, "gateway.port", range: 0...65535)
            case "metricsPort": spec.metricsPort = try int(value, "gateway.metricsPort", range: 0...65535)
            case "routes":
                if let map = value.mapping {
                    for (k, v) in map {
                        let prefix = try string(k, "gateway.routes")
                        spec.routes.append((prefix, try string(v, "gateway.routes.\(prefix)").lowercased()))
                    }
                } else if let seq = value.sequence {
                    for (i, item) in seq.enumerated() {
                        var prefix = "/"
                        var service = ""
                        for (k, _, v) in try mapping(item, "gateway.routes[\(i)]", allowed: ["prefix", "service"]) {
                            if k == "prefix" { prefix = try string(v, "gateway.routes[\(i)].prefix") } else { service = try string(v, "gateway.routes[\(i)].service").lowercased() }
                        }
                        spec.routes.append((prefix, service))
                    }
                } else {
                    throw fail(value, "gateway.routes", "expected PREFIX: SERVICE pairs, e.g. '/: frontend'")
                }
            default: break
            }
        }
        for (i, route) in spec.routes.enumerated() where !route.prefix.hasPrefix("/") {
            throw fail(node, "gateway.routes[\(i)]", "route prefix must start with '/', got '\(route.prefix)'")
        }
        return spec
    }

    private func telemetry(_ node: Node) throws(MeshFileError) -> TelemetrySpec {
        var spec = TelemetrySpec()
        for (key, _, value) in try mapping(node, "telemetry", allowed: ["sampling", "propagation", "customTags", "excludePaths", "exporter", "inferParent", "mode", "tail"]) {
            let path = "telemetry.\(key)"
            switch key {
            case "sampling": spec.samplingPercent = try double(value, path, range: 0...100)
            case "propagation":
                let names = try strings(value, path)
                guard let formats = PropagationFormat.parseList(names.joined(separator: ",")) else {
                    throw fail(value, path, "unknown format in \(names)", hint: "use w3c, b3multi, b3single and/or sw8")
                }
                spec.propagation = formats
            case "customTags":
                spec.customTags = try stringMap(value, path)
                for (name, source) in spec.customTags where !(source.hasPrefix("literal:") || source.hasPrefix("env:") || source.hasPrefix("header:")) {
                    throw fail(value, "\(path).\(name)", "'\(source)' must start with literal:, env: or header:")
                }
            case "excludePaths": spec.excludePaths = try strings(value, path)
            case "inferParent": spec.inferParent = try bool(value, path)
            case "mode":
                let text = try string(value, path)
                guard let mode = TelemetryMode(rawValue: text) else {
                    throw fail(value, path, "must be head or tail, got '\(text)'",
                               hint: "head: sidecars sample `sampling`% of traces; tail: they send everything and the collector keeps errors, slow traces and a share of the rest")
                }
                spec.mode = mode
            case "tail": spec.tail = try tailSampling(value)
            case "exporter":
                spec.exporter = try string(value, path).lowercased()
                guard ["zipkin", "otlp"].contains(spec.exporter) else { throw fail(value, path, "must be zipkin or otlp, got '\(spec.exporter)'") }
            default: break
            }
        }
        return spec
    }

    private func tailSampling(_ node: Node) throws(MeshFileError) -> TailSamplingSpec {
        var spec = TailSamplingSpec()
        for (key, _, value) in try mapping(node, "telemetry.tail", allowed: ["decisionWait", "slowerThan", "keepPercent", "policyFile"]) {
            let path = "telemetry.tail.\(key)"
            switch key {
            case "decisionWait", "slowerThan":
                let text = try string(value, path)
                guard let nanos = GoDuration.parseNanos(text), nanos > 0, nanos < UInt64(Int64.max) else {
                    throw fail(value, path, "expected a duration like 500ms, 2s or 10s, got '\(text)'")
                }
                if key == "decisionWait" { spec.decisionWait = .nanoseconds(Int64(nanos)) } else { spec.slowerThanMs = Int64(max(1, nanos / 1_000_000)) }
            case "keepPercent": spec.keepPercent = try double(value, path, range: 0...100)
            case "policyFile": spec.policyFile = try string(value, path)
            default: break
            }
        }
        return spec
    }

    private func collector(_ node: Node) throws(MeshFileError) -> CollectorSpec {
        var spec = CollectorSpec()
        var grpcPortGiven = false
        for (key, _, value) in try mapping(node, "collector", allowed: ["url", "queryPort", "zipkinPort", "otlpPort", "otlpGrpcPort", "adminPort", "dataDir", "embedded"]) {
            let path = "collector.\(key)"
            switch key {
            case "url":
                let url = try string(value, path)
                guard url.hasPrefix("http://"), url.hasSuffix("/api/v2/spans") || url.hasSuffix("/v1/traces") else {
                    throw fail(value, path, "'\(url)' is not a collector endpoint", hint: "use http://HOST:9411/api/v2/spans (Zipkin) or http://HOST:4318/v1/traces (OTLP)")
                }
                spec.url = url
            case "embedded":
                if try bool(value, path) == false && spec.url == nil { spec.url = spec.url ?? "" }
            case "queryPort": spec.queryPort = try int(value, path, range: 0...65535)
            case "zipkinPort": spec.zipkinPort = try int(value, path, range: 0...65535)
            case "otlpPort": spec.otlpPort = try int(value, path, range: 0...65535)
            case "otlpGrpcPort":
                spec.otlpGRPCPort = try int(value, path, range: -1...65535, hint: "a port, 0 for any free one, or -1 for no OTLP/gRPC")
                grpcPortGiven = true
            case "adminPort": spec.adminPort = try int(value, path, range: 0...65535)
            case "dataDir": spec.dataDir = try string(value, path)
            default: break
            }
        }
        // A file that asks for free ports (otlpPort: 0) gets a free one for gRPC too, rather than
        // taking 4317 beside them.
        if !grpcPortGiven, spec.otlpPort == 0 { spec.otlpGRPCPort = 0 }
        if spec.url == "" {
            throw fail(node, "collector", "embedded: false needs a url", hint: "give collector.url, or drop 'embedded: false' to run the built-in collector")
        }
        return spec
    }

    private func capture(_ node: Node) throws(MeshFileError) -> CaptureMode {
        let text = try string(node, "capture")
        switch text {
        case "netns": return .netns
        case "off", "none", "false": return .off
        default:
            throw fail(node, "capture", "expected netns or off, got '\(text)'",
                       hint: "capture: netns runs each service in a network namespace of its own (root, Linux); leave it out for HTTP_PROXY mode")
        }
    }

    private func prometheus(_ node: Node) throws(MeshFileError) -> PrometheusSpec? {
        if case .scalar = node { return try bool(node, "prometheus") ? PrometheusSpec() : nil }
        var spec = PrometheusSpec()
        for (key, _, value) in try mapping(node, "prometheus", allowed: ["port", "scrapeInterval"]) {
            switch key {
            case "port": spec.port = try int(value, "prometheus.port", range: 0...65535, hint: "0 picks a free port")
            case "scrapeInterval":
                spec.scrapeInterval = try string(value, "prometheus.scrapeInterval")
                guard PrometheusConfig.isDuration(spec.scrapeInterval) else {
                    throw fail(value, "prometheus.scrapeInterval", "'\(spec.scrapeInterval)' is not a duration", hint: "e.g. 5s, 15s or 1m")
                }
            default: break
            }
        }
        return spec
    }

    private func crossCheck(_ file: MeshFile, servicesNode: Node) throws(MeshFileError) {
        let names = file.services.map(\.name)
        var seen = Set<String>()
        for (i, name) in names.enumerated() where !seen.insert(name).inserted {
            throw fail(servicesNode.sequence?[i], "services[\(i)].name", "service '\(name)' is defined twice")
        }
        var instances = Set(names)
        for (i, service) in file.services.enumerated() where service.replicas > 1 {
            if file.capture == .netns {
                throw fail(servicesNode.sequence?[i], "services[\(i)].replicas", "replicas > 1 is not supported with capture: netns (one pod per service)",
                           hint: "drop capture: netns, or run one replica")
            }
            for instance in service.instanceNames where !instances.insert(instance).inserted || names.contains(instance) {
                throw fail(servicesNode.sequence?[i], "services[\(i)].replicas", "replica '\(instance)' has the name of another service",
                           hint: "rename one of them")
            }
        }
        for (i, service) in file.services.enumerated() {
            for upstream in service.upstreams where !seen.contains(upstream) {
                throw fail(servicesNode.sequence?[i], "services[\(i)].upstreams", "'\(upstream)' is not a service in this mesh",
                           hint: "known services: \(names.joined(separator: ", "))")
            }
        }
        if let gateway = file.gateway {
            for route in gateway.routes where !seen.contains(route.service) {
                throw fail(nil, "gateway.routes", "route \(route.prefix) goes to '\(route.service)', which is not a service in this mesh",
                           hint: "known services: \(names.joined(separator: ", "))")
            }
        }
    }
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
