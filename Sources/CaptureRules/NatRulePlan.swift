/// The nat rules for one address family, in the order Istio's `istio-iptables` appends them
/// (`tools/istio-iptables/pkg/capture/run.go`, REDIRECT mode), with our chain names. Left out,
/// because Meshtrace has no use for them: the HBONE port 15008 (Istio's ambient tunnel), the UDP
/// twins of the outbound port exclusions (DNS capture), TPROXY, DNS and interface options.
public struct NatRulePlan: Sendable, Equatable {
    public static let inboundChain = "MESHTRACE_INBOUND"
    public static let redirectChain = "MESHTRACE_REDIRECT"
    public static let inboundRedirectChain = "MESHTRACE_IN_REDIRECT"
    public static let outputChain = "MESHTRACE_OUTPUT"
    public static let chains = [inboundChain, redirectChain, inboundRedirectChain, outputChain]
    /// Every chain Meshtrace creates starts with this; cleanup finds jumps to it by the prefix.
    public static let chainPrefix = "MESHTRACE_"

    /// iptables' `multiport` match takes at most 15 ports.
    static let multiportLimit = 15

    public var family: IPFamily
    /// `-A CHAIN …` lines, in order.
    public var rules: [String]

    public init(_ options: CaptureOptions, family: IPFamily) {
        self.family = family
        let loopback = family == .v4 ? "127.0.0.1/32" : "::1/128"
        // The inbound passthrough's source: the sidecar connects to the app's pod IP from it, so
        // that hop is not captured again (run.go: "127.0.0.6/::6 is bind connect from inbound
        // passthrough cluster").
        let passthroughSource = family == .v4 ? "127.0.0.6/32" : "::6/128"
        var rules: [String] = []
        func add(_ chain: String, _ spec: String) { rules.append("-A \(chain) \(spec)") }

        add(Self.redirectChain, "-p tcp -j REDIRECT --to-ports \(options.outboundCapturePort)")
        add(Self.inboundRedirectChain, "-p tcp -j REDIRECT --to-ports \(options.inboundCapturePort)")

        switch options.includeInboundPorts {
        case .all:
            add("PREROUTING", "-p tcp -j \(Self.inboundChain)")
            for ports in Self.portMatches(options.excludeInboundPorts) {
                add(Self.inboundChain, "-p tcp \(ports) -j RETURN")
            }
            add(Self.inboundChain, "-p tcp -j \(Self.inboundRedirectChain)")
        case .only(let ports) where !ports.isEmpty:
            add("PREROUTING", "-p tcp -j \(Self.inboundChain)")
            for port in ports { add(Self.inboundChain, "-p tcp --dport \(port) -j \(Self.inboundRedirectChain)") }
        case .only:
            break
        }

        add("OUTPUT", "-j \(Self.outputChain)")
        for ports in Self.portMatches(options.excludeOutboundPorts) {
            add(Self.outputChain, "-p tcp \(ports) -j RETURN")
        }
        add(Self.outputChain, "-o lo -s \(passthroughSource) -j RETURN")

        let includedLoopback: Bool
        if case .only(let cidrs) = options.includeOutboundCIDRs {
            includedLoopback = cidrs.contains { $0.isLoopback }
        } else {
            includedLoopback = false
        }
        for owner in ["--uid-owner \(options.proxyUID)", "--gid-owner \(options.effectiveGID)"] {
            // The proxy calling its own pod IP (an app calling its own Service) goes to inbound capture.
            add(Self.outputChain, "-o lo ! -d \(loopback) -p tcp -m owner \(owner) -j \(Self.inboundRedirectChain)")
            // An app calling its own pod over lo is not captured, unless loopback ranges were asked for.
            if !includedLoopback { add(Self.outputChain, "-o lo -m owner ! \(owner) -j RETURN") }
            // The loop guard: the proxy's own upstream connections are never captured.
            add(Self.outputChain, "-m owner \(owner) -j RETURN")
        }
        add(Self.outputChain, "-d \(loopback) -j RETURN")
        for cidr in options.excludeOutboundCIDRs where cidr.family == family {
            add(Self.outputChain, "-d \(cidr) -j RETURN")
        }
        switch options.includeOutboundCIDRs {
        case .all:
            add(Self.outputChain, "-j \(Self.redirectChain)")
        case .only(let cidrs):
            for cidr in cidrs where cidr.family == family {
                add(Self.outputChain, "-d \(cidr) -j \(Self.redirectChain)")
            }
        }
        self.rules = rules
    }

    /// `--dport P`, or `-m multiport --dports A,B,…` in groups of at most 15.
    static func portMatches(_ ports: [Int]) -> [String] {
        if ports.count == 1 { return ["--dport \(ports[0])"] }
        return stride(from: 0, to: ports.count, by: multiportLimit).map { start in
            let group = ports[start..<min(start + multiportLimit, ports.count)]
            return "-m multiport --dports " + group.map(String.init).joined(separator: ",")
        }
    }

    /// The `iptables-restore --noflush` input that installs these rules over whatever an earlier
    /// run left: declaring a chain that exists flushes it, and the jumps into our chains found in
    /// `existing` are deleted first, so running twice leaves one copy of each rule. One
    /// transaction: the namespace is never half-captured.
    public func restoreScript(existing: NatTableState) -> String {
        var lines = ["*nat"]
        for chain in Self.chains { lines.append(":\(chain) - [0:0]") }
        for jump in existing.jumpsIntoOurChains { lines.append("-D " + jump) }
        for chain in existing.ourChains where !Self.chains.contains(chain) {
            lines.append("-F \(chain)")
            lines.append("-X \(chain)")
        }
        lines += rules
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    /// What `--dry-run` prints for this family: the rules as `iptables-restore` reads them.
    public var dryRunText: String {
        var lines = ["*nat"]
        for chain in Self.chains { lines.append(":\(chain) - [0:0]") }
        lines += rules
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Meshtrace's part of a namespace's nat table, read from `iptables-save -t nat`.
public struct NatTableState: Sendable, Equatable {
    /// Rule specs (without `-A`) in any chain that jump to one of our chains.
    public var jumpsIntoOurChains: [String] = []
    /// Our chains that exist.
    public var ourChains: [String] = []
    /// Every `-A` line of our chains, for counting and display.
    public var ourRules: [String] = []

    public init() {}

    public init(save text: String) {
        var inNat = false
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = String(raw).trimming(" \t\r")
            if line.hasPrefix("*") {
                inNat = line == "*nat"
                continue
            }
            guard inNat else { continue }
            if line.hasPrefix(":") {
                let name = String(line.dropFirst().prefix { $0 != " " })
                if name.hasPrefix(NatRulePlan.chainPrefix) { ourChains.append(name) }
            } else if line.hasPrefix("-A ") {
                let spec = String(line.dropFirst(3))
                let chain = spec.prefix { $0 != " " }
                if chain.hasPrefix(NatRulePlan.chainPrefix) {
                    ourRules.append(line)
                } else if Self.jumpTarget(spec)?.hasPrefix(NatRulePlan.chainPrefix) == true {
                    jumpsIntoOurChains.append(spec)
                }
            }
        }
    }

    public var isEmpty: Bool { jumpsIntoOurChains.isEmpty && ourChains.isEmpty }

    /// The `iptables-restore --noflush` input that removes exactly what Meshtrace added: the
    /// jumps into its chains, then the chains. nil when there is nothing to remove.
    public var cleanupScript: String? {
        guard !isEmpty else { return nil }
        var lines = ["*nat"]
        for jump in jumpsIntoOurChains { lines.append("-D " + jump) }
        for chain in ourChains { lines.append("-F \(chain)") }
        for chain in ourChains { lines.append("-X \(chain)") }
        lines.append("COMMIT")
        return lines.joined(separator: "\n") + "\n"
    }

    static func jumpTarget(_ spec: String) -> Substring? {
        let words = spec.split(separator: " ")
        guard let j = words.firstIndex(of: "-j"), j + 1 < words.count else { return nil }
        return words[j + 1]
    }
}

extension String {
    func trimming(_ set: String) -> String {
        var s = Substring(self)
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
