import TraceWire

/// The workload a pod belongs to, named as Istio names it for `ISTIO_META_WORKLOAD_NAME`
/// (istio/istio `GetDeployMetaFromPod`): the controlling owner's name, with a ReplicaSet's
/// `-<pod-template-hash>` trimmed to its Deployment and a Job's `-<8-10 digit>` schedule
/// suffix trimmed to its CronJob; the pod's own name when it has no controller.
public enum WorkloadName {
    /// For a pod as the webhook sees it (owner references set by its controller).
    public static func forPod(_ pod: JSONValue) -> String {
        let metadata = pod["metadata"] ?? .object([])
        let name = metadata["name"]?.stringValue ?? ""
        let generateName = metadata["generateName"]?.stringValue ?? ""
        guard !generateName.isEmpty else { return forBarePod(name: name, generateName: generateName) }
        let owners = metadata["ownerReferences"]?.arrayValue ?? []
        guard let controller = owners.first(where: { $0["controller"]?.boolValue == true }),
              let ownerName = controller["name"]?.stringValue, !ownerName.isEmpty
        else { return forBarePod(name: name, generateName: generateName) }
        let kind = controller["kind"]?.stringValue ?? ""
        let labels = metadata["labels"] ?? .object([])
        switch kind {
        case "ReplicaSet":
            for hashLabel in ["pod-template-hash", "rollouts-pod-template-hash"] {
                if let hash = labels[hashLabel]?.stringValue, !hash.isEmpty, ownerName.hasSuffix("-" + hash) {
                    return String(ownerName.dropLast(hash.count + 1))
                }
            }
            return ownerName
        case "ReplicationController":
            if let config = labels["deploymentconfig"]?.stringValue, !config.isEmpty { return config }
            return ownerName
        case "Job":
            return cronJobName(ownerName) ?? ownerName
        default:
            return ownerName
        }
    }

    /// A pod with no controller: its name, or its `generateName` without the trailing dash.
    public static func forBarePod(name: String, generateName: String) -> String {
        if !name.isEmpty { return name }
        var base = Substring(generateName)
        while base.hasSuffix("-") { base = base.dropLast() }
        return String(base)
    }

    /// `nightly-29384716` → `nightly`: a CronJob names its Jobs `<name>-<scheduled minute>`.
    static func cronJobName(_ jobName: String) -> String? {
        guard let dash = jobName.lastIndex(of: "-"), dash > jobName.startIndex else { return nil }
        let suffix = jobName[jobName.index(after: dash)...]
        guard (8...10).contains(suffix.count), suffix.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return String(jobName[..<dash])
    }
}
