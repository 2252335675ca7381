/// Every fixed port a mesh listens on, with the setting that chose it, checked before
/// anything starts: a port that is taken stops `up` at once with the port and its key, rather
/// than half a mesh starting and a listener failing deep inside it.
public struct MeshPort: Sendable, Equatable {
    /// The mesh.yaml key (`collector.queryPort`, `gateway.port`, `services[1].port`) or flag.
    public var setting: String
    public var port: Int
}

extension MeshFile {
    /// The fixed (non-zero) ports of this file, in start order. Port 0 is always free.
    /// `settingNames` renames keys for runs configured by flags (`demo --query-port`).
    func fixedPorts(controlPort: Int, settingNames: [String: String] = [:]) -> [MeshPort] {
        var ports: [MeshPort] = []
        func add(_ key: String, _ port: Int) {
            if port != 0 { ports.append(MeshPort(setting: settingNames[key] ?? key, port: port)) }
        }
        if collector.url == nil {
            add("collector.queryPort", collector.queryPort)
            add("collector.zipkinPort", collector.zipkinPort)
            add("collector.otlpPort", collector.otlpPort)
            if collector.otlpGRPCPort > 0 { add("collector.otlpGrpcPort", collector.otlpGRPCPort) }
            add("collector.adminPort", collector.adminPort)
        }
        add("--control-port", controlPort)
        if let gateway {
            add("gateway.port", gateway.port)
            add("gateway.metricsPort", gateway.metricsPort)
        }
        for (i, service) in services.enumerated() {
            // With capture: netns an app listens in a namespace of its own: its port is not this
            // machine's, and two apps may share one.
            if capture != .netns { add("services[\(i)].port (\(service.name))", service.port) }
            add("services[\(i)].metricsPort (\(service.name))", service.metricsPort)
        }
        if let prometheus { add("prometheus.port", prometheus.port) }
        return ports
    }
}

enum PortPreflight {
    /// Throws for the first port that is taken, or given twice in one file.
    static func check(_ ports: [MeshPort]) throws(MeshStartError) {
        var seen: [Int: String] = [:]
        for entry in ports {
            if let other = seen[entry.port] {
                throw MeshStartError("port \(entry.port) is given twice, by \(other) and \(entry.setting); each listener needs its own port")
            }
            seen[entry.port] = entry.setting
            if !PortAllocator.isFree(entry.port) { throw .portInUse(entry.port, setting: entry.setting) }
        }
    }
}
