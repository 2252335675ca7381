/// The per-pod annotations `inject` and the webhook read (README, "Kubernetes").
public enum PodAnnotation {
    public static let inject = "meshtrace.io/inject"
    public static let sampling = "meshtrace.io/sampling"
    public static let excludeOutboundPorts = "meshtrace.io/exclude-outbound-ports"
    public static let excludeInboundPorts = "meshtrace.io/exclude-inbound-ports"
    public static let collector = "meshtrace.io/collector"
}

/// One pod's settings: the options, overridden by its annotations.
struct PodSettings: Equatable {
    /// nil: no `meshtrace.io/inject` annotation.
    var inject: Bool?
    var samplingPercent: String
    var collector: String
    var excludeOutboundPorts: [Int]
    var excludeInboundPorts: [Int]

    /// - Parameter path: the annotations' field path, for errors.
    init(annotations: [(key: String, value: String)], options: InjectOptions, path: String) throws(FieldError) {
        func value(_ key: String) -> String? { annotations.last { $0.key == key }?.value }
        func field(_ key: String) -> String { FieldPath.join(path, key) }

        if let text = value(PodAnnotation.inject) {
            switch text.lowercased() {
            case "true", "yes", "y", "on", "enabled": inject = true
            case "false", "no", "n", "off", "disabled": inject = false
            default: throw FieldError(field(PodAnnotation.inject), "expected \"true\" or \"false\", got '\(text)'")
            }
        }
        samplingPercent = options.samplingPercent
        if let text = value(PodAnnotation.sampling) {
            if let problem = Self.samplingProblem(text) { throw FieldError(field(PodAnnotation.sampling), problem) }
            samplingPercent = text.trimmingSpaces
        }
        collector = options.collector
        if let text = value(PodAnnotation.collector) {
            if let problem = Self.collectorProblem(text) { throw FieldError(field(PodAnnotation.collector), problem) }
            collector = text.trimmingSpaces
        }
        excludeOutboundPorts = try Self.ports(value(PodAnnotation.excludeOutboundPorts), field(PodAnnotation.excludeOutboundPorts))
        excludeInboundPorts = try Self.ports(value(PodAnnotation.excludeInboundPorts), field(PodAnnotation.excludeInboundPorts))
    }

    /// "8080, 9090" → [8080, 9090]; each 1-65535.
    static func ports(_ text: String?, _ field: String) throws(FieldError) -> [Int] {
        guard let text, !text.trimmingSpaces.isEmpty else { return [] }
        var ports: [Int] = []
        for part in text.split(separator: ",") {
            let item = String(part).trimmingSpaces
            guard let port = Int(item), (1...65535).contains(port) else {
                throw FieldError(field, "expected a comma-separated list of ports 1-65535, got '\(item)' in '\(text)'")
            }
            if !ports.contains(port) { ports.append(port) }
        }
        return ports
    }

    static func samplingProblem(_ text: String) -> String? {
        guard let value = Double(text.trimmingSpaces), value >= 0, value <= 100 else {
            return "expected a percentage from 0 to 100, got '\(text)'"
        }
        return nil
    }

    static func collectorProblem(_ text: String) -> String? {
        let url = text.trimmingSpaces
        guard url.hasPrefix("http://") || url.hasPrefix("https://"), url.count > 8, !url.contains(" ") else {
            return "expected an http:// URL of a collector, e.g. http://meshtrace-collector.meshtrace.svc:9411, got '\(text)'"
        }
        return nil
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
