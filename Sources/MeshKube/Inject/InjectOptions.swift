/// What every injected pod gets unless its annotations say otherwise: the same for
/// `meshtrace inject` and the `meshtrace injector` webhook, so both make the same pod.
public struct InjectOptions: Sendable, Equatable {
    /// Image holding `meshtrace-sidecar` (and iptables) for the init container and the proxy.
    public var image: String
    public var imagePullPolicy: String
    /// Where the proxies send spans (`meshtrace.io/collector` overrides per pod).
    public var collector: String
    /// Trace sampling percentage, 0-100 (`meshtrace.io/sampling` overrides per pod).
    public var samplingPercent: String
    /// The proxy as a native sidecar (an init container with `restartPolicy: Always`, Kubernetes
    /// 1.29+); false puts it in `containers`, for older clusters.
    public var nativeSidecar: Bool

    public init(
        image: String = InjectOptions.defaultImage, imagePullPolicy: String = "IfNotPresent",
        collector: String = InjectOptions.collectorURL(namespace: "meshtrace"), samplingPercent: String = "100",
        nativeSidecar: Bool = true
    ) {
        self.image = image
        self.imagePullPolicy = imagePullPolicy
        self.collector = collector
        self.samplingPercent = samplingPercent
        self.nativeSidecar = nativeSidecar
    }

    public static let defaultImage = "meshtrace:latest"

    /// The collector `meshtrace install` puts in `namespace`, by its Service's cluster DNS name.
    public static func collectorURL(namespace: String) -> String {
        "http://meshtrace-collector.\(namespace).svc:9411"
    }

    public func validate() throws(FieldError) {
        if image.isEmpty { throw FieldError("--image", "must not be empty") }
        if !["Always", "IfNotPresent", "Never"].contains(imagePullPolicy) {
            throw FieldError("--image-pull-policy", "expected Always, IfNotPresent or Never, got '\(imagePullPolicy)'")
        }
        if let problem = PodSettings.collectorProblem(collector) { throw FieldError("--collector", problem) }
        if let problem = PodSettings.samplingProblem(samplingPercent) { throw FieldError("--sampling", problem) }
    }
}

/// The sidecar's fixed ports and identity, as Istio numbers them (wave2-facts §A.1, §A.3), so
/// dashboards, NetworkPolicies and habits carry over.
public enum SidecarPorts {
    public static let outboundCapture = 15001
    public static let inboundCapture = 15006
    /// Prometheus scrape target (`/stats/prometheus`).
    public static let metrics = 15090
    /// The kubelet's startup and readiness probes (`/healthz/ready`).
    public static let health = 15021
    /// Loopback only; never reached from outside the pod.
    public static let admin = 15000
    /// The proxy's UID and GID: the capture rules let its own traffic out uncaptured.
    public static let proxyUID = 1337
}

/// Names the injector gives what it adds; also how it recognises a pod it already injected.
public enum InjectedNames {
    public static let initContainer = "meshtrace-init"
    public static let proxyContainer = "meshtrace-proxy"
    public static let statusAnnotation = "meshtrace.io/status"
    /// Other meshes' proxies: two proxies capturing one pod's traffic would loop.
    static let foreignProxies = ["istio-proxy", "linkerd-proxy"]
}
