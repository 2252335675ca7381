import Foundation

/// Installs and removes the capture rules in the current network namespace with the iptables
/// programs (`iptables-save`, then one `iptables-restore --noflush` per address family), and
/// the IPv6 inbound-passthrough source address. Every step either completes or is undone: a
/// failure on IPv6 removes the IPv4 rules just installed, so the namespace is never half-captured.
public struct CaptureInstaller: Sendable {
    public enum IPv6Mode: String, Sendable, CaseIterable {
        case auto, on, off
    }

    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public let backend: IptablesBackend
    let runner: any CommandRunner
    let loopback: any PassthroughAddress

    public init(backend: IptablesBackend, runner: any CommandRunner = ProcessRunner(), loopback: any PassthroughAddress = LoopbackPassthroughAddress()) {
        self.backend = backend
        self.runner = runner
        self.loopback = loopback
    }

    /// The families to act on: IPv4 always; IPv6 when asked, or (auto) when `ip6tables` is there
    /// and the namespace has IPv6.
    public func families(_ mode: IPv6Mode) throws(Failure) -> [IPFamily] {
        switch mode {
        case .off: return [.v4]
        case .on:
            guard backend.save6 != nil, backend.restore6 != nil else {
                throw Failure("--ipv6 on, but \(backend.program.replacingOccurrences(of: "iptables", with: "ip6tables"))-save/-restore are missing")
            }
            return [.v4, .v6]
        case .auto:
            return backend.save6 != nil && backend.restore6 != nil && Self.namespaceHasIPv6() ? [.v4, .v6] : [.v4]
        }
    }

    /// Installs the rules; returns the lines to print.
    public func install(_ options: CaptureOptions, families: [IPFamily]) throws(Failure) -> [String] {
        var report: [String] = []
        var installed: [IPFamily] = []
        do throws(Failure) {
            for family in families {
                if family == .v6 {
                    if try loopback.add() { report.append("added ::6/128 to lo (the inbound passthrough source)") }
                }
                let plan = NatRulePlan(options, family: family)
                let before = try state(family)
                try restore(family, script: plan.restoreScript(existing: before))
                installed.append(family)
                let after = try state(family)
                // Exactly the plan's rules in our chains, and one jump from each built-in chain we use.
                let ours = plan.rules.filter { Self.chainOf($0).hasPrefix(NatRulePlan.chainPrefix) }.count
                let jumps = plan.rules.count - ours
                guard after.ourRules.count == ours, after.jumpsIntoOurChains.count == jumps else {
                    throw Failure("""
                        after installing, the \(family.label) nat table holds \(after.ourRules.count) rules in the MESHTRACE_ chains \
                        and \(after.jumpsIntoOurChains.count) jumps into them; expected \(ours) and \(jumps)
                        """)
                }
                report.append("\(family.label): \(plan.rules.count) nat rules installed")
                report += plan.rules.map { "  " + $0 }
            }
        } catch {
            // Undo what this run installed: captured traffic with no rules for the other family,
            // or a table that did not check out, must not be left behind.
            for family in installed { _ = try? removeRules(family) }
            if installed.contains(.v6) || families.contains(.v6) { _ = try? loopback.remove() }
            throw error
        }
        return report
    }

    /// Removes the rules (and the `::6` address); returns the lines to print.
    public func cleanup(families: [IPFamily]) throws(Failure) -> [String] {
        var report: [String] = []
        for family in families {
            let removed = try removeRules(family)
            report.append(removed == 0 ? "\(family.label): no Meshtrace nat rules to remove" : "\(family.label): removed \(removed) nat rules and chains")
        }
        if families.contains(.v6), try loopback.remove() { report.append("removed ::6/128 from lo") }
        return report
    }

    /// The `--dry-run` text: each family's rules as `iptables-restore` reads them.
    public static func dryRun(_ options: CaptureOptions, families: [IPFamily]) -> String {
        families.map { family in
            "# \(family.label) (\(family.restoreProgram) --noflush)\n" + NatRulePlan(options, family: family).dryRunText
        }.joined(separator: "\n")
    }

    // MARK: - Steps

    private func removeRules(_ family: IPFamily) throws(Failure) -> Int {
        let existing = try state(family)
        guard let script = existing.cleanupScript else { return 0 }
        try restore(family, script: script)
        let after = try state(family)
        guard after.isEmpty else {
            throw Failure("\(family.label): Meshtrace chains or jumps are still present after cleanup: \(after.ourChains + after.jumpsIntoOurChains)")
        }
        return existing.ourRules.count + existing.jumpsIntoOurChains.count
    }

    private func state(_ family: IPFamily) throws(Failure) -> NatTableState {
        let program = family == .v4 ? backend.save : (backend.save6 ?? "")
        let result = try run(program, ["-t", "nat"], input: nil)
        guard result.status == 0 else {
            throw Failure("\(Self.name(program)) -t nat failed (exit \(result.status)): \(Self.firstLine(result.error))\(hint(result.error))")
        }
        return NatTableState(save: result.output)
    }

    private func restore(_ family: IPFamily, script: String) throws(Failure) {
        let program = family == .v4 ? backend.restore : (backend.restore6 ?? "")
        let result = try run(program, ["--noflush"], input: script)
        guard result.status == 0 else {
            throw Failure("""
                \(Self.name(program)) --noflush failed (exit \(result.status)): \(result.error.trimming(" \n\t"))\(hint(result.error))
                """)
        }
    }

    private func run(_ program: String, _ arguments: [String], input: String?) throws(Failure) -> CommandResult {
        do {
            return try runner.run(program, arguments, input: input)
        } catch {
            throw Failure("could not run \(program): \(error)")
        }
    }

    /// What to do about the usual failures.
    private func hint(_ error: String) -> String {
        let lower = error.lowercased()
        if lower.contains("permission denied") || lower.contains("operation not permitted") || lower.contains("must be root") {
            return "\n  hint: installing capture rules needs root, or the NET_ADMIN and NET_RAW capabilities (as Istio's istio-init)"
        }
        if lower.contains("no chain/target/match") || lower.contains("extension") || lower.contains("not supported") || lower.contains("protocol not supported") {
            return "\n  hint: the kernel lacks a netfilter feature these rules use (nat table, REDIRECT, owner or multiport match); try --backend legacy or nft"
        }
        return ""
    }

    static func chainOf(_ rule: String) -> Substring {
        rule.dropFirst(3).prefix { $0 != " " }
    }

    static func name(_ path: String) -> String { String(path.split(separator: "/").last ?? Substring(path)) }

    static func firstLine(_ text: String) -> String {
        String(text.split(separator: "\n").first ?? "").trimming(" \t")
    }

    /// IPv6 is on in this namespace (`/proc/sys/net` shows the reader's namespace).
    static func namespaceHasIPv6() -> Bool {
        guard FileManager.default.fileExists(atPath: "/proc/net/if_inet6"),
              let disabled = try? String(contentsOfFile: "/proc/sys/net/ipv6/conf/all/disable_ipv6", encoding: .utf8)
        else { return false }
        return disabled.trimming(" \n") == "0"
    }
}

extension IPFamily {
    var label: String { self == .v4 ? "IPv4" : "IPv6" }
    var restoreProgram: String { self == .v4 ? "iptables-restore" : "ip6tables-restore" }
}
