import Crypto
import Foundation
import TraceWire

extension InstallManifests {
    static let injectorPort = 9443
    static let tlsPath = "/etc/meshtrace/tls"

    func injector() -> [JSONValue] {
        let name = Self.injectorName
        let selector = JSONValue.object(["app.kubernetes.io/name": .string(name)])
        func b64(_ text: String) -> JSONValue { .string(Data(text.utf8).base64EncodedString()) }
        let secret = JSONValue.object([
            "apiVersion": .string("v1"), "kind": .string("Secret"), "metadata": meta("\(name)-tls", component: name),
            "type": .string("kubernetes.io/tls"),
            "data": .object([
                "ca.crt": b64(certificates.caCertificatePEM), "tls.crt": b64(certificates.certificatePEM), "tls.key": b64(certificates.privateKeyPEM),
            ]),
        ])
        let service = JSONValue.object([
            "apiVersion": .string("v1"), "kind": .string("Service"), "metadata": meta(name, component: name),
            "spec": .object([
                "selector": selector,
                "ports": .array([.object([
                    "name": .string("https-webhook"), "port": .int(443), "targetPort": .int(Self.injectorPort), "protocol": .string("TCP"),
                ])]),
            ]),
        ])
        let args = [
            "injector", "--port", String(Self.injectorPort),
            "--tls-cert", "\(Self.tlsPath)/tls.crt", "--tls-key", "\(Self.tlsPath)/tls.key",
        ] + injectorArguments
        let container = JSONValue.object([
            "name": .string("injector"),
            "image": .string(image),
            "imagePullPolicy": .string(imagePullPolicy),
            "command": .strings(["meshtrace"]),
            "args": .strings(args),
            "ports": .array([Self.port("https-webhook", Self.injectorPort)]),
            "readinessProbe": Self.probe("/healthz", Self.injectorPort, scheme: "HTTPS"),
            "livenessProbe": Self.probe("/healthz", Self.injectorPort, scheme: "HTTPS"),
            "resources": .object([
                "requests": .object(["cpu": .string("50m"), "memory": .string("64Mi")]),
                "limits": .object(["cpu": .string("1"), "memory": .string("256Mi")]),
            ]),
            "securityContext": Self.containerSecurity(),
            "volumeMounts": .array([.object(["name": .string("tls"), "mountPath": .string(Self.tlsPath), "readOnly": .bool(true)])]),
        ])
        let deployment = JSONValue.object([
            "apiVersion": .string("apps/v1"), "kind": .string("Deployment"), "metadata": meta(name, component: name),
            "spec": .object([
                // Two replicas: the webhook fails open, so while none answers new pods start without a proxy.
                "replicas": .int(2),
                "selector": .object(["matchLabels": selector]),
                "template": .object([
                    "metadata": .object([
                        "labels": labels(name),
                        // A new certificate (re-running install) changes this, so the pods restart and load it.
                        "annotations": Self.podAnnotations(["meshtrace.io/tls-checksum": .string(tlsChecksum)]),
                    ]),
                    "spec": .object([
                        "serviceAccountName": .string(name),
                        "automountServiceAccountToken": .bool(false),
                        "securityContext": Self.podSecurity(),
                        "containers": .array([container]),
                        "volumes": .array([.object([
                            "name": .string("tls"),
                            "secret": .object(["secretName": .string("\(name)-tls"), "defaultMode": .int(0o440)]),
                        ])]),
                    ]),
                ]),
            ]),
        ])
        return [serviceAccount(name), secret, service, deployment, webhookConfiguration()]
    }

    var tlsChecksum: String {
        let digest = SHA256.hash(data: Data((certificates.certificatePEM + certificates.privateKeyPEM).utf8))
        return digest.prefix(8).map { String(format: "%02x", $0) }.joined()
    }

    /// Pods only, on CREATE, in namespaces labelled `meshtrace-injection=enabled`; failing open
    /// (`failurePolicy: Ignore`), as a tracing tool must not stop a cluster from starting pods.
    func webhookConfiguration() -> JSONValue {
        .object([
            "apiVersion": .string("admissionregistration.k8s.io/v1"), "kind": .string("MutatingWebhookConfiguration"),
            // Cluster-scoped: the namespace in the name lets two installs live side by side.
            "metadata": meta("\(Self.injectorName)-\(namespace)", component: Self.injectorName, namespaced: false),
            "webhooks": .array([.object([
                "name": .string("inject.meshtrace.io"),
                "admissionReviewVersions": .strings(["v1"]),
                "sideEffects": .string("None"),
                "failurePolicy": .string("Ignore"),
                "matchPolicy": .string("Equivalent"),
                "reinvocationPolicy": .string("Never"),
                "timeoutSeconds": .int(10),
                "clientConfig": .object([
                    "service": .object([
                        "name": .string(Self.injectorName), "namespace": .string(namespace), "path": .string("/inject"), "port": .int(443),
                    ]),
                    "caBundle": .string(Data(certificates.caCertificatePEM.utf8).base64EncodedString()),
                ]),
                "rules": .array([.object([
                    "operations": .strings(["CREATE"]), "apiGroups": .strings([""]), "apiVersions": .strings(["v1"]),
                    "resources": .strings(["pods"]), "scope": .string("Namespaced"),
                ])]),
                "namespaceSelector": .object(["matchLabels": .object([Self.namespaceLabel: .string("enabled")])]),
            ])]),
        ])
    }
}
