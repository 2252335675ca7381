/// A Kubernetes Service named by the DNS name a client used (`Host`): `reviews`,
/// `reviews.default.svc` or `reviews.default.svc.cluster.local` (any cluster domain), with or
/// without a port, are service `reviews`; a bare name is in the caller's own namespace, as the
/// pod's DNS search path resolves it. Two-label names (`reviews.default`) are left alone: they
/// cannot be told from an external host such as `example.com`. IP addresses name nothing.
public struct KubernetesServiceName: Sendable, Equatable {
    public var service: String
    public var namespace: String

    public init(service: String, namespace: String) {
        self.service = service
        self.namespace = namespace
    }

    public static func parse(host authority: String, callerNamespace: String) -> KubernetesServiceName? {
        var host = Substring(authority)
        if host.hasPrefix("[") { return nil }  // an IPv6 literal
        if let colon = host.lastIndex(of: ":") {
            guard host[host.index(after: colon)...].allSatisfy(\.isNumber) else { return nil }
            host = host[..<colon]
        }
        if host.hasSuffix(".") { host = host.dropLast() }  // a fully qualified name
        let labels = host.lowercased().split(separator: ".", omittingEmptySubsequences: false)
        guard let first = labels.first, labels.allSatisfy(isDNSLabel), !labels.allSatisfy({ $0.allSatisfy(\.isNumber) }) else { return nil }
        switch labels.count {
        case 1:
            guard first != "localhost" else { return nil }
            return KubernetesServiceName(service: String(first), namespace: callerNamespace)
        case 3...:
            guard labels[2] == "svc" else { return nil }
            return KubernetesServiceName(service: String(first), namespace: String(labels[1]))
        default:
            return nil
        }
    }

    private static func isDNSLabel(_ label: Substring) -> Bool {
        guard (1...63).contains(label.count), label.first != "-", label.last != "-" else { return false }
        return label.allSatisfy { ($0.isASCII && ($0.isLetter || $0.isNumber)) || $0 == "-" }
    }
}
