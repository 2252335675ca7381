import Foundation
import TraceWire

/// `meshtrace install`: every object the cluster side needs, from one command, as
/// `istioctl manifest generate` prints Istio's: the namespace, the collector (a StatefulSet with
/// its SQLite on a PersistentVolumeClaim) and the injector webhook with its certificate.
///
/// No RBAC objects: neither component calls the Kubernetes API (the webhook gets the whole pod
/// in the review, and the API server applies the namespace selector), so each runs under its
/// own ServiceAccount with no token mounted.
public struct InstallManifests: Sendable {
    public var namespace: String
    public var image: String
    public var imagePullPolicy: String
    /// Size of the collector's volume for SQLite.
    public var storageSize: String
    public var retention: String
    public var certificates: WebhookCertificates
    /// `meshtrace injector`'s own arguments after the TLS ones (the sidecar settings).
    public var injectorArguments: [String]
    /// Extra arguments for `meshtrace collector`.
    public var collectorArguments: [String]
    /// ClickHouse instead of SQLite: a stateless collector Deployment, no volume.
    public var clickhouse: ClickHouseSettings?

    public init(
        namespace: String, image: String, imagePullPolicy: String, storageSize: String = "10Gi", retention: String = "72h",
        certificates: WebhookCertificates, injectorArguments: [String], collectorArguments: [String] = [],
        clickhouse: ClickHouseSettings? = nil
    ) {
        self.clickhouse = clickhouse
        self.namespace = namespace
        self.image = image
        self.imagePullPolicy = imagePullPolicy
        self.storageSize = storageSize
        self.retention = retention
        self.certificates = certificates
        self.injectorArguments = injectorArguments
        self.collectorArguments = collectorArguments
    }

    public static let collectorName = "meshtrace-collector"
    public static let injectorName = "meshtrace-injector"
    /// The namespace label that opts a namespace's pods in.
    public static let namespaceLabel = "meshtrace-injection"
    /// A UID no image user has; the collector writes only to its volume (fsGroup).
    static let runAsUser = 65532

    public func documents() -> [JSONValue] {
        [namespaceObject()] + collector() + injector()
    }

    func meta(_ name: String, component: String, namespaced: Bool = true) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [("name", .string(name))]
        if namespaced { members.append(("namespace", .string(namespace))) }
        members.append(("labels", labels(component)))
        return .object(members)
    }

    func labels(_ component: String) -> JSONValue {
        .object(["app.kubernetes.io/name": .string(component), "app.kubernetes.io/part-of": .string("meshtrace")])
    }

    func namespaceObject() -> JSONValue {
        .object([
            "apiVersion": .string("v1"), "kind": .string("Namespace"),
            "metadata": .object(["name": .string(namespace), "labels": .object(["app.kubernetes.io/part-of": .string("meshtrace")])]),
        ])
    }

    func serviceAccount(_ name: String) -> JSONValue {
        .object([
            "apiVersion": .string("v1"), "kind": .string("ServiceAccount"), "metadata": meta(name, component: name),
            "automountServiceAccountToken": .bool(false),
        ])
    }

    /// Restricted Pod Security: non-root, no privilege escalation, every capability dropped.
    static func containerSecurity() -> JSONValue {
        .object([
            "allowPrivilegeEscalation": .bool(false), "capabilities": .object(["drop": .strings(["ALL"])]),
            "readOnlyRootFilesystem": .bool(true), "runAsNonRoot": .bool(true),
            "runAsUser": .int(runAsUser), "runAsGroup": .int(runAsUser),
        ])
    }

    static func podSecurity() -> JSONValue {
        .object(["fsGroup": .int(runAsUser), "runAsNonRoot": .bool(true), "seccompProfile": .object(["type": .string("RuntimeDefault")])])
    }

    static func port(_ name: String, _ number: Int) -> JSONValue {
        .object(["name": .string(name), "containerPort": .int(number), "protocol": .string("TCP")])
    }

    static func probe(_ path: String, _ port: Int, scheme: String = "HTTP") -> JSONValue {
        .object([
            "httpGet": .object(["path": .string(path), "port": .int(port), "scheme": .string(scheme)]),
            "periodSeconds": .int(10), "timeoutSeconds": .int(3), "failureThreshold": .int(3),
        ])
    }

    /// Pods of the stack itself are never injected: the collector would trace its own ingest.
    static func podAnnotations(_ extra: KeyValuePairs<String, JSONValue> = [:]) -> JSONValue {
        var members: [(key: String, value: JSONValue)] = [(PodAnnotation.inject, .string("false"))]
        members += extra.map { (key: $0.key, value: $0.value) }
        return .object(members)
    }
}
