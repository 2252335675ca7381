import Foundation
import Testing
import TraceWire

@testable import MeshKube

/// Fixtures and expected outputs in `Golden/`. `MESHTRACE_UPDATE_GOLDEN=1 swift test --filter
/// MeshKubeTests` rewrites the expected files; review the diff by hand against Istio's injected
/// pods (wave2-facts §A.5) before committing it.
enum Golden {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

    static func read(_ name: String) throws -> String {
        try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
    }

    static func check(_ actual: String, against name: String) throws {
        if ProcessInfo.processInfo.environment["MESHTRACE_UPDATE_GOLDEN"] == "1" {
            try actual.write(to: directory.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        let expected = try read(name)
        #expect(actual == expected, "differs from Golden/\(name); MESHTRACE_UPDATE_GOLDEN=1 rewrites it")
    }
}

@Suite struct InjectTests {
    let injector = ManifestInjector(options: InjectOptions())

    @Test func deploymentWithProbesPortsAndAnnotationsMatchesGolden() throws {
        let result = try injector.inject(yaml: Golden.read("probes-deployment.yaml"))
        #expect(result.injectedCount == 1)
        try Golden.check(ManifestWriter.write(result.documents), against: "probes-deployment.injected.yaml")
        // The tcpSocket probe cannot work through the proxy: the user is told.
        #expect(result.warnings.contains { $0.contains("containers[1].readinessProbe is a tcpSocket probe") })
    }

    @Test func legacySidecarMatchesGolden() throws {
        let legacy = ManifestInjector(options: InjectOptions(nativeSidecar: false))
        let result = try legacy.inject(yaml: Golden.read("probes-deployment.yaml"))
        try Golden.check(ManifestWriter.write(result.documents), against: "probes-deployment.legacy.yaml")
    }

    @Test func injectingTwiceChangesNothing() throws {
        let once = ManifestWriter.write(try injector.inject(yaml: Golden.read("bookinfo.yaml")).documents)
        let again = try injector.inject(yaml: once)
        #expect(again.injectedCount == 0)
        #expect(ManifestWriter.write(again.documents) == once)
    }

    @Test func everyWorkloadKindGetsTheSidecarAndOtherKindsPassThrough() throws {
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata: {name: solo}
            spec: {containers: [{name: app, image: x}]}
            ---
            apiVersion: apps/v1
            kind: StatefulSet
            metadata: {name: db}
            spec:
              selector: {matchLabels: {app: x}}
              serviceName: db
              template:
                metadata: {labels: {app: x}}
                spec: {containers: [{name: app, image: x}]}
            ---
            apiVersion: batch/v1
            kind: CronJob
            metadata: {name: nightly}
            spec:
              schedule: "0 3 * * *"
              jobTemplate:
                spec:
                  template:
                    metadata: {labels: {app: x}}
                    spec: {containers: [{name: app, image: x}]}
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: settings}
            data: {a: "1"}
            ---
            apiVersion: networking.istio.io/v1
            kind: VirtualService
            metadata: {name: custom-resource}
            spec: {hosts: [x]}
            """
        let result = try injector.inject(yaml: yaml)
        #expect(result.injectedCount == 3)
        let docs = result.documents
        #expect(docs[0]["spec"]?["initContainers"]?[1]?["name"] == .string("meshtrace-proxy"))
        #expect(docs[1]["spec"]?["template"]?["spec"]?["initContainers"]?[0]?["name"] == .string("meshtrace-init"))
        let cronPod = docs[2]["spec"]?["jobTemplate"]?["spec"]?["template"]
        let env = cronPod?["spec"]?["initContainers"]?[1]?["env"]?.arrayValue ?? []
        #expect(env.contains { $0["name"] == .string("MESHTRACE_WORKLOAD_NAME") && $0["value"] == .string("nightly") })
        #expect(docs[3] == (try ManifestReader.read(yaml))[3].value)
        #expect(docs[4] == (try ManifestReader.read(yaml))[4].value)
    }

    @Test func optOutHostNetworkAndOtherMeshesAreLeftAlone() throws {
        let yaml = """
            apiVersion: v1
            kind: Pod
            metadata: {name: a, annotations: {meshtrace.io/inject: "false"}}
            spec: {containers: [{name: app, image: x}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: b}
            spec: {hostNetwork: true, containers: [{name: app, image: x}]}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: c}
            spec: {containers: [{name: app, image: x}, {name: istio-proxy, image: y}]}
            """
        let result = try injector.inject(yaml: yaml)
        #expect(result.injectedCount == 0)
        #expect(result.documents == (try ManifestReader.read(yaml)).map(\.value))
        #expect(result.warnings.count == 2)
        #expect(result.warnings[0].hasPrefix("document 2 (Pod b): pod not injected: it uses hostNetwork"))
    }

    @Test(arguments: [
        ("kind: Deployment\nmetadata: {name: x}\n", 1, "apiVersion", "required"),
        ("apiVersion: apps/v1\nkind: Deploymnet\nmetadata: {name: x}\n", 1, "kind", "did you mean Deployment?"),
        ("apiVersion: v1\nkind: Service\n---\n- just\n- a list\n", 2, "", "expected a Kubernetes object"),
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n", 1, "spec.template", "required"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: []}\n", 1, "spec.containers", "at least one container"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: [{image: x}]}\n", 1, "spec.containers[0].name", "required"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, annotations: {meshtrace.io/sampling: \"200\"}}\nspec: {containers: [{name: a}]}\n",
         1, "metadata.annotations[\"meshtrace.io/sampling\"]", "0 to 100"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, annotations: {meshtrace.io/exclude-outbound-ports: \"80,http\"}}\nspec: {containers: [{name: a}]}\n",
         1, "metadata.annotations[\"meshtrace.io/exclude-outbound-ports\"]", "'http'"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, annotations: {meshtrace.io/inject: maybe}}\nspec: {containers: [{name: a}]}\n",
         1, "metadata.annotations[\"meshtrace.io/inject\"]", "maybe"),
        ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {tier: 3}}\nspec: {containers: [{name: a}]}\n",
         1, "metadata.labels.tier", "expected a string"),
        ("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: x}\n", 1, "kind", "use apiVersion apps/v1"),
    ])
    func badInputNamesDocumentAndField(_ yaml: String, _ document: Int, _ field: String, _ fragment: String) {
        #expect {
            _ = try injector.inject(yaml: yaml)
        } throws: { error in
            guard let e = error as? ManifestError else { return false }
            return e.document == document && e.field == field && e.message.contains(fragment)
        }
    }

    @Test func workloadNamesFollowIstiosRules() throws {
        func pod(_ name: String, generate: String, owner: (String, String)?, labels: String = "{}") throws -> JSONValue {
            let ownerText = owner.map { "[{apiVersion: apps/v1, kind: \($0.0), name: \($0.1), controller: true, uid: u}]" } ?? "[]"
            return try #require(ManifestReader.read("""
                metadata: {name: "\(name)", generateName: "\(generate)", ownerReferences: \(ownerText), labels: \(labels)}
                """).first?.value)
        }
        #expect(WorkloadName.forPod(try pod("", generate: "reviews-v1-5c7d8f9b4-", owner: ("ReplicaSet", "reviews-v1-5c7d8f9b4"), labels: "{pod-template-hash: 5c7d8f9b4}")) == "reviews-v1")
        #expect(WorkloadName.forPod(try pod("web-0", generate: "web-", owner: ("StatefulSet", "web"))) == "web")
        #expect(WorkloadName.forPod(try pod("", generate: "nightly-29384716-", owner: ("Job", "nightly-29384716"))) == "nightly")
        #expect(WorkloadName.forPod(try pod("", generate: "once-", owner: ("Job", "once"))) == "once")
        #expect(WorkloadName.forPod(try pod("solo", generate: "", owner: nil)) == "solo")
        #expect(WorkloadName.forPod(try pod("", generate: "scratch-", owner: nil)) == "scratch")
        // A ReplicaSet without the hash label keeps its full name (a bare ReplicaSet).
        #expect(WorkloadName.forPod(try pod("", generate: "rs-abc-", owner: ("ReplicaSet", "rs-abc"))) == "rs-abc")
    }
}
