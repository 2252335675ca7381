import ArgumentParser
import Foundation
import MeshKube

/// The sidecar settings `inject`, `injector` and `install` share, so the webhook and the CLI
/// make the same pod from the same flags.
struct KubeInjectFlags: ParsableArguments {
    @Option(name: .customLong("image"), help: "Image with meshtrace-sidecar and iptables, for the init container and the proxy (default \(InjectOptions.defaultImage)).")
    var image: String = InjectOptions.defaultImage
    @Option(name: .customLong("image-pull-policy"), help: "Always, IfNotPresent or Never (default IfNotPresent).")
    var imagePullPolicy: String = "IfNotPresent"
    @Option(name: .customLong("collector"), help: "Collector URL the proxies export to (default: the one `meshtrace install` runs, \(InjectOptions.collectorURL(namespace: "meshtrace"))). Annotation meshtrace.io/collector overrides per pod.")
    var collector: String?
    @Option(name: .customLong("sampling"), help: "Trace sampling percentage 0-100 (default 100). Annotation meshtrace.io/sampling overrides per pod.")
    var sampling: String = "100"
    @Flag(name: .customLong("legacy-sidecar"), help: "Put the proxy in `containers` instead of a native sidecar init container (for clusters older than Kubernetes 1.29).")
    var legacySidecar = false

    func options(defaultNamespace: String = "meshtrace") throws -> InjectOptions {
        let options = InjectOptions(
            image: image, imagePullPolicy: imagePullPolicy,
            collector: collector ?? InjectOptions.collectorURL(namespace: defaultNamespace),
            samplingPercent: sampling, nativeSidecar: !legacySidecar)
        do {
            try options.validate()
        } catch {
            throw ValidationError("\(error.field): \(error.message)")
        }
        return options
    }

    /// The same settings as flags again, for the injector Deployment `install` writes.
    func arguments(collector resolved: String) -> [String] {
        var args = ["--image", image, "--image-pull-policy", imagePullPolicy, "--collector", resolved, "--sampling", sampling]
        if legacySidecar { args.append("--legacy-sidecar") }
        return args
    }
}

enum KubeCommandOutput {
    static func warn(_ line: String) {
        FileHandle.standardError.write(Data("warning: \(line)\n".utf8))
    }

    /// Prints `error: …` to stderr and exits 1.
    static func fail(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        return ExitCode(1)
    }
}
