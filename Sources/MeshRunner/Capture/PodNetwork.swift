import CaptureRules
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// `capture: netns`: each service in a network namespace of its own with its own address, on a
/// bridge, like a pod. The bridge is in a namespace of the mesh's own too, so nothing is added
/// to the machine's network: no interface, no address, no route, no rule. Names resolve through
/// `/etc/netns/NAME/hosts` (which `ip netns exec` mounts over `/etc/hosts`). Everything is named
/// `meshtrace-MESH-…-PID`, so `meshtrace down` and the next `up` find what a crashed run left.
struct PodNetwork: Sendable {
    struct Pod: Sendable, Equatable {
        var service: String
        var namespace: String
        var address: String
    }

    static let subnet = "10.213.0"
    static let prefix = "meshtrace-"

    let mesh: String
    let switchNamespace: String
    var pods: [Pod] = []

    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    /// Why `capture: netns` cannot run here ("needs root (…)"), or nil.
    static func unavailable(runner: any CommandRunner = ProcessRunner()) -> String? {
        #if os(Linux)
        if geteuid() != 0 { return "needs root (it makes network namespaces and installs iptables rules in them)" }
        for tool in ["ip", "setpriv"] where runner.locate(tool) == nil {
            return "needs `\(tool)` (Debian: apt-get install \(tool == "ip" ? "iproute2" : "util-linux"))"
        }
        return nil
        #else
        return "needs Linux (network namespaces and iptables)"
        #endif
    }

    static func namespacePrefix(mesh: String) -> String { "\(prefix)\(safe(mesh))-" }

    /// Makes the switch and one pod per service (10.213.0.2, .3, …); on failure removes what it made.
    static func create(mesh: String, services: [String], runner: any CommandRunner = ProcessRunner()) throws -> PodNetwork {
        let owner = getpid()
        let base = namespacePrefix(mesh: mesh)
        var network = PodNetwork(mesh: mesh, switchNamespace: "\(base)switch-\(owner)")
        do {
            try network.ip(["netns", "add", network.switchNamespace], runner)
            try network.inSwitch(["ip", "link", "set", "lo", "up"], runner)
            try network.inSwitch(["ip", "link", "add", "br0", "type", "bridge"], runner)
            try network.inSwitch(["ip", "addr", "add", "\(subnet).1/24", "dev", "br0"], runner)
            try network.inSwitch(["ip", "link", "set", "br0", "up"], runner)
            for (i, service) in services.enumerated() {
                let pod = Pod(service: service, namespace: "\(base)\(safe(service))-\(owner)", address: "\(subnet).\(i + 2)")
                network.pods.append(pod)
                try network.ip(["netns", "add", pod.namespace], runner)
                let port = "p\(i + 2)"
                // Both ends are made inside the mesh's namespaces.
                try network.inSwitch(["ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", pod.namespace], runner)
                try network.inSwitch(["ip", "link", "set", port, "master", "br0"], runner)
                try network.inSwitch(["ip", "link", "set", port, "up"], runner)
                try network.inPod(pod, ["ip", "link", "set", "lo", "up"], runner)
                try network.inPod(pod, ["ip", "addr", "add", "\(pod.address)/24", "dev", "eth0"], runner)
                try network.inPod(pod, ["ip", "link", "set", "eth0", "up"], runner)
            }
            try network.writeHosts()
        } catch {
            network.remove(runner: runner)
            throw error
        }
        return network
    }

    func pod(_ service: String) -> Pod? { pods.first { $0.service == service } }

    /// Every service's name to its address, in each pod's `/etc/hosts`.
    private func writeHosts() throws {
        var lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        lines += pods.map { "\($0.address) \($0.service)" }
        let text = lines.joined(separator: "\n") + "\n"
        for pod in pods {
            let directory = "/etc/netns/\(pod.namespace)"
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                try text.write(toFile: directory + "/hosts", atomically: true, encoding: .utf8)
            } catch {
                throw Failed(description: "cannot write \(directory)/hosts: \(error)")
            }
        }
    }

    /// The command line that runs `arguments` inside `pod` as `uid`:`gid`.
    func command(in pod: Pod, uid: UInt32, gid: UInt32, _ arguments: [String], runner: any CommandRunner = ProcessRunner()) -> [String] {
        [runner.locate("ip") ?? "ip", "netns", "exec", pod.namespace, "setpriv", "--reuid=\(uid)", "--regid=\(gid)", "--clear-groups", "--"] + arguments
    }

    /// Stops what runs in the namespaces and removes them, the links in them and the hosts files.
    func remove(runner: any CommandRunner = ProcessRunner()) {
        for namespace in pods.map(\.namespace) + [switchNamespace] {
            Self.removeNamespace(namespace, runner: runner)
        }
    }

    /// Namespaces of `mesh` left by a run that did not clean up (its pid is gone), or of any
    /// run when `all`. Returns their names, removed.
    @discardableResult
    static func removeLeftovers(mesh: String, all: Bool = false, runner: any CommandRunner = ProcessRunner()) -> [String] {
        let base = namespacePrefix(mesh: mesh)
        let left = namespaces(runner: runner).filter { name in
            guard name.hasPrefix(base) else { return false }
            guard !all else { return true }
            let pid = name.split(separator: "-").last.flatMap { Int32($0) } ?? 0
            return pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH)
        }
        for name in left { removeNamespace(name, runner: runner) }
        return left
    }

    static func namespaces(runner: any CommandRunner = ProcessRunner()) -> [String] {
        guard let ip = runner.locate("ip"), let result = try? runner.run(ip, ["netns", "list"], input: nil), result.status == 0 else { return [] }
        return result.output.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
    }

    private static func removeNamespace(_ name: String, runner: any CommandRunner) {
        guard let ip = runner.locate("ip") else { return }
        // Processes keep a namespace (and its links) alive after its name is gone: stop them first.
        if let pids = try? runner.run(ip, ["netns", "pids", name], input: nil) {
            for pid in pids.output.split(separator: "\n").compactMap({ Int32($0) }) where pid != getpid() {
                kill(pid, SIGKILL)
            }
        }
        _ = try? runner.run(ip, ["netns", "del", name], input: nil)
        try? FileManager.default.removeItem(atPath: "/etc/netns/\(name)")
    }

    private func ip(_ arguments: [String], _ runner: any CommandRunner) throws {
        guard let ip = runner.locate("ip") else { throw Failed(description: "`ip` not found (install iproute2)") }
        let result: CommandResult
        do {
            result = try runner.run(ip, arguments, input: nil)
        } catch {
            throw Failed(description: "ip \(arguments.joined(separator: " ")): \(error)")
        }
        guard result.status == 0 else {
            throw Failed(description: "ip \(arguments.joined(separator: " ")) failed: \(result.error.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    private func inSwitch(_ arguments: [String], _ runner: any CommandRunner) throws {
        try ip(["netns", "exec", switchNamespace] + arguments, runner)
    }

    private func inPod(_ pod: Pod, _ arguments: [String], _ runner: any CommandRunner) throws {
        try ip(["netns", "exec", pod.namespace] + arguments, runner)
    }

    /// Letters, digits and dashes: a namespace name is a file name, and `-PID` ends it.
    static func safe(_ name: String) -> String {
        String(name.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}
