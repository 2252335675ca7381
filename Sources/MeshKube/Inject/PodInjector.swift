import TraceWire

/// What happened to one pod (or pod template).
public enum PodInjection: Sendable {
    case injected(JSONValue)
    /// Left as it was, and why (opt-out, already injected, host network, another mesh).
    case skipped(reason: String)
}

/// Adds the sidecar to one pod or pod template (`{metadata, spec}`): a pure function of the
/// pod and the options, shared by `meshtrace inject` and the webhook so they make the same pod.
public struct PodInjector: Sendable {
    public var options: InjectOptions

    public init(options: InjectOptions) {
        self.options = options
    }

    /// - Parameters:
    ///   - workloadName: the owner's name for the proxy's identity.
    ///   - path: the template's field path in its document (`spec.template`), for errors.
    ///   - warnings: things the user should know that do not stop injection.
    func inject(_ pod: JSONValue, workloadName: String, path: String, warnings: inout [String]) throws(FieldError) -> PodInjection {
        let metadataPath = FieldPath.join(path, "metadata")
        let specPath = FieldPath.join(path, "spec")
        let metadata = try Field.object(pod["metadata"], metadataPath) ?? .object([])
        let annotationsPath = FieldPath.join(metadataPath, "annotations")
        let annotations = try Field.stringMap(metadata["annotations"], annotationsPath)
        _ = try Field.stringMap(metadata["labels"], FieldPath.join(metadataPath, "labels"))
        guard let spec = try Field.object(pod["spec"], specPath, required: true) else { throw FieldError(specPath, "required, missing") }
        let containersPath = FieldPath.join(specPath, "containers")
        let initPath = FieldPath.join(specPath, "initContainers")
        let containers = try Self.containers(spec["containers"], containersPath)
        let initContainers = try Self.containers(spec["initContainers"], initPath)
        guard !containers.isEmpty else { throw FieldError(containersPath, "a pod needs at least one container") }

        let settings = try PodSettings(annotations: annotations, options: options, path: annotationsPath)
        if settings.inject == false {
            return .skipped(reason: "\(PodAnnotation.inject) is \"false\"")
        }
        let names = (containers + initContainers).compactMap { $0["name"]?.stringValue }
        if annotations.contains(where: { $0.key == InjectedNames.statusAnnotation })
            || names.contains(InjectedNames.proxyContainer) || names.contains(InjectedNames.initContainer) {
            return .skipped(reason: "already injected")
        }
        if let foreign = names.first(where: { InjectedNames.foreignProxies.contains($0) }) {
            let reason = "it already has another mesh's proxy (\(foreign)); two proxies would both capture its traffic"
            warnings.append("\(path.isEmpty ? "pod" : path) not injected: \(reason)")
            return .skipped(reason: reason)
        }
        if spec["hostNetwork"]?.boolValue == true {
            let reason = "it uses hostNetwork: capture rules there would redirect the node's own traffic"
            warnings.append("\(path.isEmpty ? "pod" : path) not injected: \(reason)")
            return .skipped(reason: reason)
        }

        let probes = ProbeInspection(containers: containers, path: containersPath)
        warnings += probes.warnings
        warnings += Self.proxyUIDWarnings(spec: spec, containers: containers, specPath: specPath, containersPath: containersPath)

        let template = SidecarTemplate(options: options, settings: settings, workloadName: workloadName, probePaths: probes.httpPaths)
        var newSpec = spec
        if options.nativeSidecar {
            // The init container first, then the proxy: the app's own init containers then run
            // with their traffic captured and a proxy to take it (wave2-facts §A.5 "Ordering").
            newSpec.set("initContainers", .array([template.initContainer(), template.proxyContainer()] + initContainers))
        } else {
            // Without native sidecars the proxy only starts with the app, so the rules go in
            // last and the app's init containers keep the network as it was.
            newSpec.set("initContainers", .array(initContainers + [template.initContainer()]))
            newSpec.set("containers", .array(containers + [template.proxyContainer()]))
        }

        var newMetadata = metadata
        try newMetadata.update("annotations") { (a: inout JSONValue) throws(FieldError) in
            let appContainer = containers.first?["name"]?.stringValue
            Self.addScrapeAnnotations(&a, existing: annotations, path: path, warnings: &warnings)
            if let appContainer, !annotations.contains(where: { $0.key == "kubectl.kubernetes.io/default-container" }) {
                // `kubectl logs` and `exec` keep going to the app, not the proxy.
                a.set("kubectl.kubernetes.io/default-container", .string(appContainer))
            }
            a.set(InjectedNames.statusAnnotation, .string(template.statusAnnotation()))
        }
        var newPod = pod
        newPod.set("metadata", newMetadata)
        newPod.set("spec", newSpec)
        return .injected(newPod)
    }

    /// Prometheus scrapes the proxy's Istio metrics; a pod that already points Prometheus at
    /// its own metrics keeps that (one pod has one scrape target by these annotations).
    static func addScrapeAnnotations(_ a: inout JSONValue, existing: [(key: String, value: String)], path: String, warnings: inout [String]) {
        let keys = ["prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path"]
        if existing.contains(where: { keys.contains($0.key) }) {
            warnings.append("\(path.isEmpty ? "pod" : path): prometheus.io annotations kept as they were; the proxy's metrics are on :\(SidecarPorts.metrics)/stats/prometheus")
            return
        }
        a.set("prometheus.io/scrape", .string("true"))
        a.set("prometheus.io/port", .string(String(SidecarPorts.metrics)))
        a.set("prometheus.io/path", .string("/stats/prometheus"))
    }

    static func containers(_ value: JSONValue?, _ path: String) throws(FieldError) -> [JSONValue] {
        let items = try Field.array(value, path)
        for (i, item) in items.enumerated() {
            let itemPath = "\(path)[\(i)]"
            guard item.isObject else { throw FieldError(itemPath, "expected a container mapping, got \(Field.describe(item))") }
            guard let name = try Field.string(item["name"], FieldPath.join(itemPath, "name")), !name.isEmpty else {
                throw FieldError(FieldPath.join(itemPath, "name"), "required, missing")
            }
        }
        return items
    }

    /// An app running as the proxy's UID would have its traffic pass uncaptured.
    static func proxyUIDWarnings(spec: JSONValue, containers: [JSONValue], specPath: String, containersPath: String) -> [String] {
        var warnings: [String] = []
        if spec["securityContext"]?["runAsUser"]?.intValue == SidecarPorts.proxyUID {
            warnings.append("\(specPath).securityContext.runAsUser is \(SidecarPorts.proxyUID), the proxy's UID: containers without their own runAsUser will not have their traffic captured")
        }
        for (i, c) in containers.enumerated() where c["securityContext"]?["runAsUser"]?.intValue == SidecarPorts.proxyUID {
            warnings.append("\(containersPath)[\(i)].securityContext.runAsUser is \(SidecarPorts.proxyUID), the proxy's UID: its traffic will not be captured")
        }
        return warnings
    }
}

/// The app's probes: HTTP probe paths are kept out of traces; a tcpSocket probe is answered by
/// the proxy while the proxy runs, so it cannot tell whether the app is up.
struct ProbeInspection {
    var httpPaths: [String] = []
    var warnings: [String] = []

    init(containers: [JSONValue], path: String) {
        for (i, c) in containers.enumerated() {
            for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
                guard let probe = c[kind] else { continue }
                if let raw = probe["httpGet"]?["path"]?.stringValue {
                    let p = String(raw.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
                    let normalized = p.hasPrefix("/") ? p : "/" + p
                    if !httpPaths.contains(normalized), !normalized.contains(",") { httpPaths.append(normalized) }
                } else if probe["tcpSocket"] != nil {
                    warnings.append("\(path)[\(i)].\(kind) is a tcpSocket probe: the proxy accepts the connection even when the app is down; use an httpGet or exec probe")
                }
            }
        }
    }
}
