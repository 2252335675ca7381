import TraceWire

/// The two containers injection adds, shaped like Istio's (wave2-facts §A.5): an init container
/// that installs the capture rules as root with NET_ADMIN/NET_RAW, and the proxy, running as
/// UID 1337 with a read-only root, every capability dropped, and its identity from the downward API.
struct SidecarTemplate {
    var options: InjectOptions
    var settings: PodSettings
    /// The owning workload's name (Deployment, StatefulSet, … or the pod), as Istio's
    /// `ISTIO_META_WORKLOAD_NAME`: the proxy cannot see owner references itself.
    var workloadName: String
    /// Extra request paths not to trace (the app's HTTP probes).
    var probePaths: [String]

    /// Ports the init container leaves uncaptured inbound: the proxy's own metrics, health and
    /// admin ports (Prometheus and the kubelet reach them directly; the capture command's own
    /// default, written out so the command says what it does), then the pod's own exclusions.
    var excludedInboundPorts: [Int] {
        var ports = [SidecarPorts.metrics, SidecarPorts.health, SidecarPorts.admin]
        for p in settings.excludeInboundPorts where !ports.contains(p) { ports.append(p) }
        return ports
    }

    /// `meshtrace-sidecar iptables …`, with the flag names agreed with the capture command
    /// (CAPTURE-CLI.md). Empty exclusions are left out rather than passed as "".
    var initCommand: [String] {
        var args = [
            "meshtrace-sidecar", "iptables",
            "--inbound-capture-port", String(SidecarPorts.inboundCapture),
            "--outbound-capture-port", String(SidecarPorts.outboundCapture),
            "--proxy-uid", String(SidecarPorts.proxyUID),
            "--proxy-gid", String(SidecarPorts.proxyUID),
            "--include-outbound-cidrs", "*",
            "--include-inbound-ports", "*",
            "--exclude-inbound-ports", excludedInboundPorts.map(String.init).joined(separator: ","),
        ]
        if !settings.excludeOutboundPorts.isEmpty {
            args += ["--exclude-outbound-ports", settings.excludeOutboundPorts.map(String.init).joined(separator: ",")]
        }
        return args
    }

    var proxyCommand: [String] {
        var args = [
            "meshtrace-sidecar", "--capture",
            "--host", "0.0.0.0",
            "--inbound-capture-port", String(SidecarPorts.inboundCapture),
            "--outbound-capture-port", String(SidecarPorts.outboundCapture),
            "--health-port", String(SidecarPorts.health),
            "--metrics-port", String(SidecarPorts.metrics),
            "--admin-port", String(SidecarPorts.admin),
            "--collector", settings.collector,
            "--sampling", settings.samplingPercent,
        ]
        if !probePaths.isEmpty {
            // The kubelet's probes reach the app through the proxy (README: why probes are not
            // rewritten); they are not requests anyone wants traced.
            let paths = Self.defaultHealthPaths + probePaths.filter { !Self.defaultHealthPaths.contains($0) }
            args += ["--health-check-path", paths.joined(separator: ",")]
        }
        return args
    }

    /// The sidecar's own default for `--health-check-path`.
    static let defaultHealthPaths = ["/healthz", "/readyz", "/health"]

    func initContainer() -> JSONValue {
        .object([
            "name": .string(InjectedNames.initContainer),
            "image": .string(options.image),
            "imagePullPolicy": .string(options.imagePullPolicy),
            "command": .strings(initCommand),
            "resources": Self.resources(requestCPU: "10m", requestMemory: "16Mi", limitCPU: "100m", limitMemory: "64Mi"),
            "securityContext": .object([
                "allowPrivilegeEscalation": .bool(false),
                "capabilities": .object(["add": .strings(["NET_ADMIN", "NET_RAW"]), "drop": .strings(["ALL"])]),
                "privileged": .bool(false),
                // iptables takes its lock under /run.
                "readOnlyRootFilesystem": .bool(false),
                "runAsGroup": .int(0),
                "runAsNonRoot": .bool(false),
                "runAsUser": .int(0),
            ]),
        ])
    }

    func proxyContainer() -> JSONValue {
        let ready: JSONValue = .object(["path": .string("/healthz/ready"), "port": .int(SidecarPorts.health)])
        var container: [(key: String, value: JSONValue)] = [
            ("name", .string(InjectedNames.proxyContainer)),
            ("image", .string(options.image)),
            ("imagePullPolicy", .string(options.imagePullPolicy)),
            ("command", .strings(proxyCommand)),
            ("env", .array(environment())),
            ("ports", .array([.object([
                "containerPort": .int(SidecarPorts.metrics), "name": .string("http-envoy-prom"), "protocol": .string("TCP"),
            ])])),
            // Istio's numbers: the startup probe polls every second for up to 10 minutes, so the
            // app starts as soon as the proxy can take its traffic.
            ("startupProbe", .object([
                "httpGet": ready, "periodSeconds": .int(1), "timeoutSeconds": .int(3), "failureThreshold": .int(600),
            ])),
            ("readinessProbe", .object([
                "httpGet": ready, "periodSeconds": .int(15), "timeoutSeconds": .int(3), "failureThreshold": .int(4),
            ])),
            // Measured: about 27 MB resident and 0.06 vCPU under the proxy benchmark's load
            // (docs/performance.md); the limits leave room for bursts and large span batches.
            ("resources", Self.resources(requestCPU: "50m", requestMemory: "32Mi", limitCPU: "1", limitMemory: "256Mi")),
            ("securityContext", .object([
                "allowPrivilegeEscalation": .bool(false),
                "capabilities": .object(["drop": .strings(["ALL"])]),
                "privileged": .bool(false),
                "readOnlyRootFilesystem": .bool(true),
                "runAsGroup": .int(SidecarPorts.proxyUID),
                "runAsNonRoot": .bool(true),
                "runAsUser": .int(SidecarPorts.proxyUID),
            ])),
        ]
        if options.nativeSidecar { container.append(("restartPolicy", .string("Always"))) }
        return .object(container)
    }

    /// The proxy's identity, from the downward API (README, "Workload identity"); the labels it
    /// reads give the canonical service and revision, as Istio derives them.
    func environment() -> [JSONValue] {
        func field(_ name: String, _ path: String) -> JSONValue {
            .object(["name": .string(name), "valueFrom": .object(["fieldRef": .object(["fieldPath": .string(path)])])])
        }
        return [
            field("POD_NAME", "metadata.name"),
            field("POD_NAMESPACE", "metadata.namespace"),
            field("POD_IP", "status.podIP"),
            field("SERVICE_ACCOUNT", "spec.serviceAccountName"),
            field("NODE_NAME", "spec.nodeName"),
            .object(["name": .string("MESHTRACE_WORKLOAD_NAME"), "value": .string(workloadName)]),
            field("MESHTRACE_LABEL_APP_NAME", "metadata.labels['app.kubernetes.io/name']"),
            field("MESHTRACE_LABEL_APP", "metadata.labels['app']"),
            field("MESHTRACE_LABEL_APP_VERSION", "metadata.labels['app.kubernetes.io/version']"),
            field("MESHTRACE_LABEL_VERSION", "metadata.labels['version']"),
        ]
    }

    static func resources(requestCPU: String, requestMemory: String, limitCPU: String, limitMemory: String) -> JSONValue {
        .object([
            "limits": .object(["cpu": .string(limitCPU), "memory": .string(limitMemory)]),
            "requests": .object(["cpu": .string(requestCPU), "memory": .string(requestMemory)]),
        ])
    }

    /// `meshtrace.io/status`: what was added, so a second injection leaves the pod alone.
    func statusAnnotation() -> String {
        var w = JSONWriter()
        w.append(JSONValue.object([
            "version": .int(1),
            "mode": .string(options.nativeSidecar ? "native" : "legacy"),
            "initContainers": .strings(options.nativeSidecar ? [InjectedNames.initContainer, InjectedNames.proxyContainer] : [InjectedNames.initContainer]),
            "containers": .strings(options.nativeSidecar ? [] : [InjectedNames.proxyContainer]),
        ]))
        return String(decoding: w.bytes, as: UTF8.self)
    }
}
