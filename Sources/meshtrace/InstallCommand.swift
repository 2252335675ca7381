import ArgumentParser
import Foundation
import MeshKube

/// `meshtrace install`: prints every manifest the cluster side needs (namespace, collector,
/// injector webhook and its certificate), for `meshtrace install | kubectl apply -f -`.
struct InstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Print the Kubernetes manifests for the collector, UI and sidecar injector (pipe to kubectl apply -f -).",
        discussion: """
            The collector runs as a StatefulSet with SQLite on a PersistentVolumeClaim, behind the Service \
            meshtrace-collector (9411 Zipkin, 4318 OTLP/HTTP, 16686 UI and query API). The injector is a \
            Deployment behind a MutatingWebhookConfiguration that selects namespaces labelled \
            meshtrace-injection=enabled and fails open. A new CA and serving certificate are generated on \
            every run unless --cert-dir names a directory with ca.crt, tls.crt and tls.key.
            """
    )

    @Option(name: .customLong("namespace"), help: "Namespace for the collector and injector (default meshtrace).")
    var namespace: String = "meshtrace"
    @Option(name: .customLong("cert-dir"), help: "Use ca.crt, tls.crt and tls.key from this directory instead of generating them.")
    var certDir: String?
    @Option(name: .customLong("storage-size"), help: "The collector's volume for SQLite (default 10Gi).")
    var storageSize: String = "10Gi"
    @Option(name: .customLong("retention"), help: "Delete spans older than this (default 72h).")
    var retention: String = "72h"
    @Option(name: .customLong("clickhouse-url"), help: "Store spans in ClickHouse at this HTTP URL (e.g. http://clickhouse.db:8123) instead of SQLite: the collector becomes a Deployment of two with no volume.")
    var clickhouseURL: String?
    @Option(name: .customLong("clickhouse-database"), help: "With --clickhouse-url: the database (default meshtrace, created if missing).")
    var clickhouseDatabase: String = "meshtrace"
    @Option(name: .customLong("clickhouse-user"), help: "With --clickhouse-url: the user (default default).")
    var clickhouseUser: String = "default"
    @Option(name: .customLong("clickhouse-password-secret"), help: "With --clickhouse-url: a Secret in --namespace whose key `password` holds the password.")
    var clickhousePasswordSecret: String?
    @Option(name: .customLong("clickhouse-cluster"), help: "With --clickhouse-url: create the tables ON CLUSTER this name, sharded by trace id.")
    var clickhouseCluster: String?
    @OptionGroup var flags: KubeInjectFlags

    func validate() throws {
        guard Self.isDNSLabel(namespace) else {
            throw ValidationError("--namespace: '\(namespace)' is not a valid namespace name (lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit)")
        }
        guard storageSize.first?.isNumber == true else { throw ValidationError("--storage-size: expected a quantity like 10Gi, got '\(storageSize)'") }
        _ = try flags.options(defaultNamespace: namespace)
        if let clickhouseURL, !clickhouseURL.hasPrefix("http://") {
            throw ValidationError("--clickhouse-url: expected an http:// URL of ClickHouse's HTTP interface, got '\(clickhouseURL)'")
        }
        if clickhouseURL == nil, clickhousePasswordSecret != nil || clickhouseCluster != nil {
            throw ValidationError("--clickhouse-password-secret and --clickhouse-cluster need --clickhouse-url")
        }
    }

    static func isDNSLabel(_ s: String) -> Bool {
        guard (1...63).contains(s.count), let f = s.first, let l = s.last, f.isLetter || f.isNumber, l.isLetter || l.isNumber else { return false }
        return s.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
    }

    func run() throws {
        let options = try flags.options(defaultNamespace: namespace)
        let certificates: WebhookCertificates
        do {
            if let certDir {
                certificates = try WebhookCertificates.load(directory: certDir)
            } else {
                certificates = try WebhookCertificates.generate(service: InstallManifests.injectorName, namespace: namespace)
            }
        } catch let error as InjectorError {
            throw KubeCommandOutput.fail(error.description)
        } catch {
            throw KubeCommandOutput.fail("cannot make the injector's certificate: \(error)")
        }
        let manifests = InstallManifests(
            namespace: namespace, image: options.image, imagePullPolicy: options.imagePullPolicy,
            storageSize: storageSize, retention: retention, certificates: certificates,
            injectorArguments: flags.arguments(collector: options.collector),
            clickhouse: clickhouseURL.map {
                ClickHouseSettings(url: $0, database: clickhouseDatabase, user: clickhouseUser,
                                   passwordSecret: clickhousePasswordSecret, cluster: clickhouseCluster)
            })
        FileHandle.standardOutput.write(Data(ManifestWriter.write(manifests.documents()).utf8))
    }
}
