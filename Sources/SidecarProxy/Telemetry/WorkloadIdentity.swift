/// Who this sidecar speaks for, in the terms Istio's metrics and Kiali use: a workload in a
/// namespace, its canonical service and revision, and its `app` and `version` labels.
public struct WorkloadIdentity: Sendable, Equatable {
    public var workload: String
    public var namespace: String
    public var canonicalService: String
    public var canonicalRevision: String
    /// The pod's `app` label ("unknown" without one), Istio's `*_app`.
    public var app: String
    /// The pod's `version` label ("unknown" without one), Istio's `*_version`.
    public var version: String
    /// Set inside a Kubernetes pod: outbound `Host` names are then read as Service DNS names.
    public var kubernetes: Bool
    /// Envoy's `node_id`: `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local` in a pod.
    public var nodeID: String?

    /// Outside Kubernetes every name is the service's.
    public init(service: String, namespace: String = "default") {
        workload = service
        self.namespace = namespace
        canonicalService = service
        canonicalRevision = "latest"
        app = service
        version = "unknown"
        kubernetes = false
        nodeID = nil
    }

    /// Inside a pod, from what `meshtrace inject` puts in the proxy's environment through the
    /// downward API (`POD_NAMESPACE`, `POD_NAME`, `POD_IP`, the `app.kubernetes.io/name`,
    /// `app`, `app.kubernetes.io/version` and `version` labels, and `MESHTRACE_WORKLOAD_NAME`,
    /// the owner's name the injector worked out). Canonical service and revision follow Istio:
    /// `app.kubernetes.io/name`, else `app`, else the workload; `app.kubernetes.io/version`,
    /// else `version`, else `latest`. An explicit `--service` wins for the canonical service.
    /// nil outside a pod (no `POD_NAMESPACE`).
    public static func kubernetes(environment env: [String: String], explicitService: String?) -> WorkloadIdentity? {
        func value(_ key: String) -> String? {
            guard let v = env[key]?.trimmingCharacters(in: " \t"), !v.isEmpty else { return nil }
            return v
        }
        guard let namespace = value("POD_NAMESPACE") else { return nil }
        let podName = value("POD_NAME")
        let workload = value("MESHTRACE_WORKLOAD_NAME") ?? podName.map(Self.workload(fromPodName:)) ?? explicitService ?? "unknown"
        let appLabel = value("MESHTRACE_LABEL_APP")
        let versionLabel = value("MESHTRACE_LABEL_VERSION")
        var identity = WorkloadIdentity(service: workload, namespace: namespace)
        identity.kubernetes = true
        identity.canonicalService = explicitService ?? value("MESHTRACE_LABEL_APP_NAME") ?? appLabel ?? workload
        identity.canonicalRevision = value("MESHTRACE_LABEL_APP_VERSION") ?? versionLabel ?? "latest"
        identity.app = appLabel ?? "unknown"
        identity.version = versionLabel ?? "unknown"
        if let podName {
            identity.nodeID = "sidecar~\(value("POD_IP") ?? "127.0.0.1")~\(podName).\(namespace)~\(namespace).svc.cluster.local"
        }
        return identity
    }

    /// Without the injector's name, a generated pod name loses its random suffix and, when it
    /// then ends in a ReplicaSet hash, that too (`reviews-v1-5c7d8f9b4-x2k9z` → `reviews-v1`).
    static func workload(fromPodName name: String) -> String {
        var parts = name.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        guard parts.count > 1, let last = parts.last, last.count == 5, last.allSatisfy(Self.isGeneratedCharacter) else { return name }
        parts.removeLast()
        if parts.count > 1, let hash = parts.last, (6...10).contains(hash.count), hash.allSatisfy(Self.isGeneratedCharacter),
           hash.contains(where: \.isNumber) {
            parts.removeLast()
        }
        return parts.joined(separator: "-")
    }

    /// Kubernetes' generated names use consonants and digits (`k8s.io/apimachinery` rand).
    private static func isGeneratedCharacter(_ c: Character) -> Bool {
        "bcdfghjklmnpqrstvwxz2456789".contains(c)
    }
}

extension String {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return String(s)
    }
}
