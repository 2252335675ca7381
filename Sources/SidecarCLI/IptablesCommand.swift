import ArgumentParser
import CaptureRules

/// `meshtrace iptables` (also `meshtrace-sidecar iptables`): Istio's `istio-init` step.
public struct IptablesCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "iptables",
        abstract: "Install transparent-capture nat rules in this network namespace (as Istio's istio-init).",
        discussion: """
            Inbound TCP goes to the sidecar's inbound capture port, outbound TCP to its outbound capture \
            port; traffic of the proxy's uid/gid is never captured (run the sidecar as that uid), nor \
            is an app's traffic to localhost. Run it in the pod's namespace (an init container, or \
            `ip netns exec NAME`) as root or with NET_ADMIN and NET_RAW. Running it again replaces \
            the rules; --cleanup removes them. Lists are comma-separated; '*' means all.
            """
    )

    public init() {}

    @Option(name: .customLong("inbound-capture-port"), help: "Where inbound TCP is redirected (Istio -z).")
    var inboundCapturePort = "15006"
    @Option(name: .customLong("outbound-capture-port"), help: "Where outbound TCP is redirected (Istio -p).")
    var outboundCapturePort = "15001"
    @Option(name: .customLong("proxy-uid"), help: "The sidecar's uid: its traffic is never captured (Istio -u).")
    var proxyUID = "1337"
    @Option(name: .customLong("proxy-gid"), help: "The sidecar's gid (default: the uid) (Istio -g).")
    var proxyGID: String?
    @Option(name: .customLong("include-outbound-cidrs"), help: "Outbound destinations captured: '*' or CIDRs; '' captures none (Istio -i).")
    var includeOutboundCIDRs = "*"
    @Option(name: .customLong("exclude-outbound-cidrs"), help: "Outbound destinations never captured (Istio -x).")
    var excludeOutboundCIDRs = ""
    @Option(name: .customLong("exclude-outbound-ports"), help: "Outbound ports never captured (Istio -o).")
    var excludeOutboundPorts = ""
    @Option(name: .customLong("include-inbound-ports"), help: "Inbound ports captured: '*' or ports; '' captures none (Istio -b).")
    var includeInboundPorts = "*"
    @Option(name: .customLong("exclude-inbound-ports"), help: "With '*' inbound: ports left alone, by default the sidecar's admin, health and metrics ports (Istio -d).")
    var excludeInboundPorts = CaptureOptions.defaultExcludedInboundPorts.map(String.init).joined(separator: ",")
    @Option(name: .customLong("ipv6"), help: "auto (when ip6tables works and the namespace has IPv6), on or off.")
    var ipv6 = "auto"
    @Option(name: .customLong("backend"), help: "auto (the iptables flavour already holding rules, else the system's), nft or legacy.")
    var backend = "auto"
    @Flag(name: .customLong("dry-run"), help: "Print the rules and change nothing.")
    var dryRun = false
    @Flag(name: .customLong("cleanup"), help: "Remove the rules (and the ::6 address) instead of installing them.")
    var cleanup = false

    func options() throws -> CaptureOptions {
        do {
            var options = CaptureOptions()
            options.inboundCapturePort = try CaptureOptions.port(inboundCapturePort, flag: "inbound-capture-port")
            options.outboundCapturePort = try CaptureOptions.port(outboundCapturePort, flag: "outbound-capture-port")
            options.proxyUID = try CaptureOptions.id(proxyUID, flag: "proxy-uid")
            options.proxyGID = try proxyGID.map { (text) throws(CaptureOptions.Invalid) in try CaptureOptions.id(text, flag: "proxy-gid") }
            options.includeOutboundCIDRs = try CaptureOptions.cidrSelection(includeOutboundCIDRs, flag: "include-outbound-cidrs")
            options.excludeOutboundCIDRs = try CaptureOptions.cidrs(excludeOutboundCIDRs, flag: "exclude-outbound-cidrs")
            options.excludeOutboundPorts = try CaptureOptions.ports(excludeOutboundPorts, flag: "exclude-outbound-ports")
            options.includeInboundPorts = try CaptureOptions.portSelection(includeInboundPorts, flag: "include-inbound-ports")
            options.excludeInboundPorts = try CaptureOptions.ports(excludeInboundPorts, flag: "exclude-inbound-ports")
            try options.validate()
            return options
        } catch {
            throw ValidationError(error.description)
        }
    }

    public func validate() throws {
        _ = try options()
        guard CaptureInstaller.IPv6Mode(rawValue: ipv6) != nil else { throw ValidationError("--ipv6: expected auto, on or off, got '\(ipv6)'") }
        guard IptablesBackend.Choice(rawValue: backend) != nil else { throw ValidationError("--backend: expected auto, nft or legacy, got '\(backend)'") }
        if dryRun && cleanup { throw ValidationError("--dry-run and --cleanup together: choose one") }
    }

    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    public func run() throws {
        let options = try options()
        let mode = CaptureInstaller.IPv6Mode(rawValue: ipv6) ?? .auto
        let runner = ProcessRunner()
        if dryRun {
            // Needs no iptables: what would be installed, both families unless IPv6 is off.
            print(CaptureInstaller.dryRun(options, families: mode == .off ? [.v4] : [.v4, .v6]), terminator: "")
            return
        }
        do {
            let detected = try IptablesBackend.detect(IptablesBackend.Choice(rawValue: backend) ?? .auto, runner: runner)
            print("iptables backend: \(detected.summary)")
            let installer = CaptureInstaller(backend: detected, runner: runner)
            let families = try installer.families(mode)
            let lines = cleanup ? try installer.cleanup(families: families) : try installer.install(options, families: families)
            for line in lines { print(line) }
        } catch let error as IptablesBackend.Unavailable {
            throw Failed(description: "meshtrace iptables: \(error.description)")
        } catch let error as CaptureInstaller.Failure {
            throw Failed(description: "meshtrace iptables: \(error.description)")
        }
    }
}
