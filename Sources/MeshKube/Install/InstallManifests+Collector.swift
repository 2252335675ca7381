import TraceWire

extension InstallManifests {
    /// The collector's ports, as `meshtrace collector` serves them.
    static let collectorPorts: [(name: String, port: Int)] = [
        ("http-zipkin", 9411), ("http-otlp", 4318), ("http-query", 16686),
    ]
    static let collectorAdminPort = 14269
    static let dataPath = "/var/lib/meshtrace"

    func collector() -> [JSONValue] {
        if let clickhouse { return statelessCollector(clickhouse) }
        let name = Self.collectorName
        let selector = JSONValue.object(["app.kubernetes.io/name": .string(name)])
        // The StatefulSet's governing Service: stable DNS for the pod.
        var headless = collectorService()
        headless.set("metadata", meta("\(name)-headless", component: name))
        try? headless.update("spec") { (spec: inout JSONValue) throws(FieldError) in spec.set("clusterIP", .string("None")) }
        var container = collectorContainer(args: ["collector", "--host", "0.0.0.0", "--data-dir", Self.dataPath, "--retention", retention])
        container.set("volumeMounts", .array([.object(["name": .string("data"), "mountPath": .string(Self.dataPath)])]))
        let statefulSet = JSONValue.object([
            "apiVersion": .string("apps/v1"), "kind": .string("StatefulSet"), "metadata": meta(name, component: name),
            "spec": .object([
                // SQLite has one writer: one replica.
                "replicas": .int(1),
                "serviceName": .string("\(name)-headless"),
                "selector": .object(["matchLabels": selector]),
                "template": collectorPodTemplate(container),
                "volumeClaimTemplates": .array([.object([
                    "metadata": .object(["name": .string("data")]),
                    "spec": .object([
                        "accessModes": .strings(["ReadWriteOnce"]),
                        "resources": .object(["requests": .object(["storage": .string(storageSize)])]),
                    ]),
                ])]),
            ]),
        ])
        return [serviceAccount(name), collectorService(), headless, statefulSet]
    }

    func collectorService() -> JSONValue {
        let servicePorts = Self.collectorPorts.map { p -> JSONValue in
            .object(["name": .string(p.name), "port": .int(p.port), "targetPort": .int(p.port), "protocol": .string("TCP")])
        }
        return .object([
            "apiVersion": .string("v1"), "kind": .string("Service"), "metadata": meta(Self.collectorName, component: Self.collectorName),
            "spec": .object(["selector": .object(["app.kubernetes.io/name": .string(Self.collectorName)]), "ports": .array(servicePorts)]),
        ])
    }

    func collectorContainer(args: [String]) -> JSONValue {
        .object([
            "name": .string("collector"),
            "image": .string(image),
            "imagePullPolicy": .string(imagePullPolicy),
            "command": .strings(["meshtrace"]),
            "args": .strings(args + collectorArguments),
            "ports": .array(Self.collectorPorts.map { Self.port($0.name, $0.port) } + [Self.port("http-admin", Self.collectorAdminPort)]),
            "readinessProbe": Self.probe("/readyz", Self.collectorAdminPort),
            "livenessProbe": Self.probe("/healthz", Self.collectorAdminPort),
            "resources": .object([
                "requests": .object(["cpu": .string("100m"), "memory": .string("256Mi")]),
                "limits": .object(["cpu": .string("2"), "memory": .string("2Gi")]),
            ]),
            "securityContext": Self.containerSecurity(),
        ])
    }

    func collectorPodTemplate(_ container: JSONValue) -> JSONValue {
        .object([
            "metadata": .object([
                "labels": labels(Self.collectorName),
                "annotations": Self.podAnnotations([
                    "prometheus.io/scrape": .string("true"), "prometheus.io/port": .string(String(Self.collectorAdminPort)),
                    "prometheus.io/path": .string("/metrics"),
                ]),
            ]),
            "spec": .object([
                "serviceAccountName": .string(Self.collectorName),
                "automountServiceAccountToken": .bool(false),
                "securityContext": Self.podSecurity(),
                // SIGTERM drains the ingest queue into the store before exit.
                "terminationGracePeriodSeconds": .int(30),
                "containers": .array([container]),
            ]),
        ])
    }

    /// With ClickHouse the collector keeps nothing itself (README, "Storage: ClickHouse"): a Deployment of
    /// two, no volume, its password from a Secret through the environment.
    func statelessCollector(_ ch: ClickHouseSettings) -> [JSONValue] {
        let name = Self.collectorName
        var args = ["collector", "--host", "0.0.0.0", "--storage", "clickhouse", "--clickhouse-url", ch.url,
                    "--clickhouse-database", ch.database, "--clickhouse-user", ch.user, "--retention", retention]
        if let cluster = ch.cluster { args += ["--clickhouse-cluster", cluster] }
        var container = collectorContainer(args: args)
        if let secret = ch.passwordSecret {
            container.set("env", .array([.object([
                "name": .string("MESHTRACE_CLICKHOUSE_PASSWORD"),
                "valueFrom": .object(["secretKeyRef": .object(["name": .string(secret), "key": .string("password")])]),
            ])]))
        }
        let deployment = JSONValue.object([
            "apiVersion": .string("apps/v1"), "kind": .string("Deployment"), "metadata": meta(name, component: name),
            "spec": .object([
                "replicas": .int(2),
                "selector": .object(["matchLabels": .object(["app.kubernetes.io/name": .string(name)])]),
                "template": collectorPodTemplate(container),
            ]),
        ])
        return [serviceAccount(name), collectorService(), deployment]
    }
}

/// `meshtrace install --clickhouse-url …`: the collector's ClickHouse flags (README, "Storage: ClickHouse").
public struct ClickHouseSettings: Sendable {
    public var url: String
    public var database: String
    public var user: String
    /// A Secret in the install namespace with key `password`.
    public var passwordSecret: String?
    public var cluster: String?

    public init(url: String, database: String = "meshtrace", user: String = "default", passwordSecret: String? = nil, cluster: String? = nil) {
        self.url = url
        self.database = database
        self.user = user
        self.passwordSecret = passwordSecret
        self.cluster = cluster
    }
}
