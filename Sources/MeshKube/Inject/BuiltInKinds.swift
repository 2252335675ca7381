/// Kinds of the built-in API groups that hold pods. In `v1`, `apps/v1` and `batch/v1` every kind
/// is known (listed from the Kubernetes 1.29 and 1.37 OpenAPI schemas), so a misspelt kind
/// there is an error rather than a workload silently left without its sidecar; kinds of other
/// groups (custom resources among them) pass through unchanged.
enum BuiltInKinds {
    static let known: [String: Set<String>] = [
        "v1": [
            "Binding", "ComponentStatus", "ConfigMap", "Endpoints", "Event", "LimitRange", "Namespace", "Node",
            "PersistentVolume", "PersistentVolumeClaim", "Pod", "PodTemplate", "ReplicationController", "ResourceQuota",
            "Secret", "Service", "ServiceAccount", "Status",
        ],
        "apps/v1": ["ControllerRevision", "DaemonSet", "Deployment", "ReplicaSet", "StatefulSet"],
        "batch/v1": ["CronJob", "Job"],
    ]

    /// Where the pod template sits in each workload kind ([] = the object is a pod).
    static let templatePaths: [String: [String]] = [
        "v1/Pod": [],
        "v1/ReplicationController": ["spec", "template"],
        "apps/v1/Deployment": ["spec", "template"],
        "apps/v1/StatefulSet": ["spec", "template"],
        "apps/v1/DaemonSet": ["spec", "template"],
        "apps/v1/ReplicaSet": ["spec", "template"],
        "batch/v1/Job": ["spec", "template"],
        "batch/v1/CronJob": ["spec", "jobTemplate", "spec", "template"],
    ]

    /// Workload kinds under API versions the API server no longer serves (removed in 1.16 and 1.25).
    static let retired: Set<String> = ["extensions/v1beta1", "apps/v1beta1", "apps/v1beta2", "batch/v1beta1"]

    static func check(apiVersion: String, kind: String, path: String) throws(FieldError) {
        if let kinds = known[apiVersion], !kinds.contains(kind) {
            let suggestion = closest(to: kind, in: kinds).map { " (did you mean \($0)?)" } ?? ""
            throw FieldError(path, "unknown kind '\(kind)' for apiVersion \(apiVersion)\(suggestion)")
        }
        if retired.contains(apiVersion), ["Deployment", "DaemonSet", "ReplicaSet", "StatefulSet", "CronJob"].contains(kind) {
            let current = kind == "CronJob" ? "batch/v1" : "apps/v1"
            throw FieldError(path, "\(apiVersion) \(kind) is no longer served by Kubernetes; use apiVersion \(current)")
        }
    }

    static func podTemplatePath(apiVersion: String, kind: String) -> [String]? {
        templatePaths["\(apiVersion)/\(kind)"]
    }

    /// A known kind within two edits (case ignored), for the error's hint.
    static func closest(to kind: String, in kinds: Set<String>) -> String? {
        let target = Array(kind.lowercased())
        var best: (String, Int)?
        for candidate in kinds.sorted() {
            let d = distance(target, Array(candidate.lowercased()))
            if d <= 2, d < (best?.1 ?? .max) { best = (candidate, d) }
        }
        return best?.0
    }

    private static func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
    }
}
