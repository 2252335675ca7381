import Testing

@testable import CaptureRules

/// Our rules against Istio's for the same options. Istio's goldens are mapped to what Meshtrace
/// deliberately does differently, and nothing else:
/// - chain names `ISTIO_*` → `MESHTRACE_*`;
/// - no HBONE port 15008 (Istio's ambient tunnel): its RETURN rule and its `! --dport 15008`;
/// - no UDP twins of the outbound port exclusions (they serve Istio's DNS capture; we redirect TCP only);
/// - `-A OUTPUT -j …` for older goldens' `-A OUTPUT -p tcp -j …` (Istio dropped `-p tcp` there
///   for DNS; the jump's target only redirects TCP either way).
/// Rules are compared chain by chain, in order: order within a chain is what iptables evaluates.
@Suite struct NatRulePlanTests {
    /// Istio options as `run_test.go`'s `constructTestConfig()`: nothing captured unless set.
    static func istioTestOptions() -> CaptureOptions {
        var options = CaptureOptions()
        options.includeInboundPorts = .only([])
        options.excludeInboundPorts = []
        options.includeOutboundCIDRs = .only([])
        return options
    }

    static func options(_ change: (inout CaptureOptions) throws -> Void) rethrows -> CaptureOptions {
        var options = istioTestOptions()
        try change(&options)
        return options
    }

    /// Chain → its rules, for one family, from a golden in either of Istio's formats.
    static func istioRules(_ golden: String, family: IPFamily) -> [String: [String]] {
        var blocks: [[String]] = []
        var oldFormat: [IPFamily: [String]] = [:]
        for raw in golden.split(separator: "\n") {
            var line = String(raw)
            if line == "* nat" {
                blocks.append([])
                continue
            }
            if line.hasPrefix("iptables -t nat ") {
                line.removeFirst("iptables -t nat ".count)
                oldFormat[.v4, default: []].append(line)
                continue
            }
            if line.hasPrefix("ip6tables -t nat ") {
                line.removeFirst("ip6tables -t nat ".count)
                oldFormat[.v6, default: []].append(line)
                continue
            }
            if line.hasPrefix("-"), !blocks.isEmpty { blocks[blocks.count - 1].append(line) }
        }
        let lines = oldFormat.isEmpty ? (family == .v4 ? blocks.first ?? [] : (blocks.count > 1 ? blocks[1] : [])) : oldFormat[family] ?? []
        var byChain: [String: [String]] = [:]
        for var line in lines where line.hasPrefix("-A ") {
            line = line.replacingOccurrences(of: "ISTIO_", with: "MESHTRACE_")
            if line.hasSuffix("--dport 15008 -j RETURN") || line.contains("-p udp") { continue }
            line = line.replacingOccurrences(of: " ! --dport 15008", with: "")
            if line == "-A OUTPUT -p tcp -j MESHTRACE_OUTPUT" { line = "-A OUTPUT -j MESHTRACE_OUTPUT" }
            byChain[String(CaptureInstaller.chainOf(line)), default: []].append(line)
        }
        return byChain
    }

    static func ourRules(_ options: CaptureOptions, family: IPFamily) -> [String: [String]] {
        var byChain: [String: [String]] = [:]
        for rule in NatRulePlan(options, family: family).rules {
            byChain[String(CaptureInstaller.chainOf(rule)), default: []].append(rule)
        }
        return byChain
    }

    static func check(_ golden: String, _ options: CaptureOptions, families: [IPFamily] = [.v4]) {
        for family in families {
            let expected = istioRules(golden, family: family)
            #expect(!expected.isEmpty)
            let ours = ourRules(options, family: family)
            for chain in Set(expected.keys).union(ours.keys).sorted() {
                #expect(ours[chain] ?? [] == expected[chain] ?? [], "\(family) chain \(chain)")
            }
        }
    }

    @Test func inboundWildcardWithExclusions() throws {
        Self.check(IstioGoldens.inboundWildcardExclude, try Self.options {
            $0.includeInboundPorts = .all
            $0.excludeInboundPorts = try CaptureOptions.ports("22,80,443", flag: "x")
        })
    }

    @Test func inboundWildcard() {
        Self.check(IstioGoldens.inboundPortsWildcard, Self.options { $0.includeInboundPorts = .all })
    }

    @Test func inboundPortList() {
        Self.check(IstioGoldens.inboundPortsInclude, Self.options { $0.includeInboundPorts = .only([32000, 31000]) })
    }

    @Test func outboundPortExclusions() {
        Self.check(IstioGoldens.outboundPortsExclude, Self.options { $0.excludeOutboundPorts = [22, 80, 443] })
        Self.check(IstioGoldens.outboundPortsExcludeSingle, Self.options { $0.excludeOutboundPorts = [22] })
    }

    @Test func outboundCIDRInclusion() throws {
        Self.check(IstioGoldens.ipnets, try Self.options { $0.includeOutboundCIDRs = try CaptureOptions.cidrSelection("10.0.0.0/8", flag: "x") })
    }

    @Test func ipv6UsesItsOwnLoopbackAndPassthroughSource() {
        Self.check(IstioGoldens.ipv6InboundPorts, Self.options { $0.includeInboundPorts = .only([4000, 5000]) }, families: [.v4, .v6])
    }

    /// Our defaults are Istio's injected `istio-init` arguments, but for the excluded inbound
    /// ports, which are our sidecar's (15000, 15021, 15090) rather than Istio's (15090, 15021, 15020).
    @Test func defaultsAreIstiosInjectedInitContainer() {
        var options = CaptureOptions()
        options.excludeInboundPorts = [15090, 15021, 15020]
        Self.check(IstioGoldens.injectedDefault, options)
        #expect(CaptureOptions().excludeInboundPorts == [15000, 15021, 15090])
    }

    @Test func excludedAndIncludedCIDRsGoToTheirFamily() throws {
        var options = CaptureOptions()
        options.includeOutboundCIDRs = try CaptureOptions.cidrSelection("10.0.0.0/8, fd00::/8", flag: "x")
        options.excludeOutboundCIDRs = try CaptureOptions.cidrs("10.1.0.0/16,FD00:0:0::1", flag: "x")
        let v4 = NatRulePlan(options, family: .v4).rules
        let v6 = NatRulePlan(options, family: .v6).rules
        #expect(v4.suffix(2) == ["-A MESHTRACE_OUTPUT -d 10.1.0.0/16 -j RETURN", "-A MESHTRACE_OUTPUT -d 10.0.0.0/8 -j MESHTRACE_REDIRECT"])
        #expect(v6.suffix(2) == ["-A MESHTRACE_OUTPUT -d fd00::1/128 -j RETURN", "-A MESHTRACE_OUTPUT -d fd00::/8 -j MESHTRACE_REDIRECT"])
    }

    /// Including a loopback range is asking for app-to-localhost capture: the "app on lo is not
    /// captured" RETURNs go, as in Istio's run.go.
    @Test func includingLoopbackDropsTheLoopbackReturns() throws {
        var options = CaptureOptions()
        options.includeOutboundCIDRs = try CaptureOptions.cidrSelection("127.1.2.3/32", flag: "x")
        let rules = NatRulePlan(options, family: .v4).rules
        #expect(!rules.contains { $0.contains("-o lo -m owner ! --uid-owner") })
        #expect(rules.contains("-A MESHTRACE_OUTPUT -m owner --uid-owner 1337 -j RETURN"))
    }

    @Test func moreThanFifteenPortsSplitIntoSeveralMultiportRules() {
        var options = CaptureOptions()
        options.excludeOutboundPorts = Array(1...16)
        let rules = NatRulePlan(options, family: .v4).rules.filter { $0.hasPrefix("-A MESHTRACE_OUTPUT") && $0.contains("multiport") }
        #expect(rules == [
            "-A MESHTRACE_OUTPUT -p tcp -m multiport --dports 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15 -j RETURN",
            "-A MESHTRACE_OUTPUT -p tcp -m multiport --dports 16 -j RETURN",
        ])
    }

    @Test func gidDefaultsToTheUID() {
        var options = CaptureOptions()
        options.proxyUID = 2102
        #expect(NatRulePlan(options, family: .v4).rules.contains("-A MESHTRACE_OUTPUT -m owner --gid-owner 2102 -j RETURN"))
        options.proxyGID = 7
        #expect(NatRulePlan(options, family: .v4).rules.contains("-A MESHTRACE_OUTPUT -m owner --gid-owner 7 -j RETURN"))
    }
}
