import CaptureRules

/// The capture rules inside one pod, installed as `meshtrace iptables` would there. The proxy
/// uid is this process's (the mesh runs each sidecar in-process); the apps run as another uid,
/// so their connections are captured and the sidecars' are not.
enum PodCaptureRules {
    static func install(in namespace: String, proxyUID: UInt32, runner: any CommandRunner = ProcessRunner()) throws -> [String] {
        let inPod = NamespacedRunner(namespace: namespace, base: runner)
        let backend = try IptablesBackend.detect(.auto, runner: inPod)
        var options = CaptureOptions()
        options.proxyUID = proxyUID
        // Pods have IPv4 addresses only: no IPv6 rules, and no ::6 to add.
        return try CaptureInstaller(backend: backend, runner: inPod).install(options, families: [.v4])
    }
}

/// Runs the iptables programs inside a namespace (`ip netns exec NAME …`).
struct NamespacedRunner: CommandRunner {
    let namespace: String
    let base: any CommandRunner

    func locate(_ program: String) -> String? { base.locate(program) }

    func run(_ path: String, _ arguments: [String], input: String?) throws -> CommandResult {
        guard let ip = base.locate("ip") else { return CommandResult(status: 127, output: "", error: "ip not found (install iproute2)") }
        return try base.run(ip, ["netns", "exec", namespace, path] + arguments, input: input)
    }
}
