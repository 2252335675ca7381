import ArgumentParser
import Foundation
import MeshKube

/// `meshtrace inject -f FILE|-`: what `istioctl kube-inject` does, offline. Reads every YAML
/// document, adds the sidecar to each pod template, and prints the result; nothing is printed
/// unless every document was read and injected.
struct InjectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inject",
        abstract: "Add the meshtrace sidecar to the pods in Kubernetes YAML (like istioctl kube-inject).",
        discussion: """
            Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs and \
            CronJobs get an init container that installs the traffic capture rules (meshtrace-sidecar \
            iptables, NET_ADMIN/NET_RAW) and the proxy as a native sidecar (UID 1337). Other objects are \
            printed unchanged. Already injected pods, pods annotated meshtrace.io/inject: "false" and \
            hostNetwork pods are left alone. Per-pod annotations: meshtrace.io/sampling, \
            meshtrace.io/collector, meshtrace.io/exclude-outbound-ports, meshtrace.io/exclude-inbound-ports. \
            Example: meshtrace inject -f app.yaml | kubectl apply -f -
            """
    )

    @Option(name: [.customShort("f"), .customLong("filename")], help: "The YAML to inject, or - for standard input.")
    var filename: String

    @OptionGroup var flags: KubeInjectFlags

    func run() throws {
        let options = try flags.options()
        let text: String
        do {
            let data = filename == "-" ? FileHandle.standardInput.readDataToEndOfFile() : try Data(contentsOf: URL(fileURLWithPath: filename))
            guard let decoded = String(data: data, encoding: .utf8) else { throw KubeCommandOutput.fail("\(filename): not UTF-8 text") }
            text = decoded
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw KubeCommandOutput.fail("cannot read \(filename): \(error.localizedDescription)")
        }
        let result: ManifestInjector.Result
        do {
            result = try ManifestInjector(options: options).inject(yaml: text)
        } catch {
            throw KubeCommandOutput.fail("\(filename == "-" ? "stdin" : filename): \(error)")
        }
        for line in result.warnings { KubeCommandOutput.warn(line) }
        FileHandle.standardOutput.write(Data(ManifestWriter.write(result.documents).utf8))
    }
}
