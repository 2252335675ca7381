/// Which iptables programs install the rules: `iptables-nft` (nf_tables, Debian's default) or
/// `iptables-legacy` (x_tables), or a plain `iptables` where only that exists. The two kernel
/// backends do not see each other's rules, so `auto` picks the one that already holds rules
/// (a node whose kubelet uses legacy), as Istio's detection does; with none, the system's
/// `iptables`.
public struct IptablesBackend: Sendable, Equatable {
    public enum Choice: String, Sendable, CaseIterable {
        case auto, nft, legacy
    }

    /// "nft", "legacy", or "unknown" (a plain `iptables` whose version names neither).
    public var kind: String
    /// The program family used, e.g. "iptables-nft", or "iptables" (the system's choice).
    public var program: String
    /// Program paths for IPv4; the IPv6 ones are the `ip6tables` twins (nil when missing).
    public var save: String
    public var restore: String
    public var save6: String?
    public var restore6: String?
    /// `iptables --version`, e.g. "iptables v1.8.9 (nf_tables)".
    public var version: String

    public struct Unavailable: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// "iptables-nft (iptables v1.8.9 (nf_tables))", for the first line of output.
    public var summary: String { "\(program) (\(version))" }

    public static func detect(_ choice: Choice, runner: any CommandRunner) throws(Unavailable) -> IptablesBackend {
        let flavours: [String]
        switch choice {
        case .nft: flavours = ["nft"]
        case .legacy: flavours = ["legacy"]
        case .auto:
            // A flavour with rules already in this namespace wins; then the system default.
            let withRules = ["legacy", "nft"].filter { (try? ruleCount(flavour: $0, runner: runner)) ?? 0 > 0 }
            if withRules.count == 1 {
                flavours = withRules
            } else {
                // The system's `iptables`, named by its flavour when that flavour's programs exist.
                let version = runner.locate("iptables").flatMap { try? runner.run($0, ["--version"], input: nil).output } ?? ""
                let system = version.contains("nf_tables") ? "nft" : version.contains("legacy") ? "legacy" : ""
                flavours = [system, "", "nft", "legacy"]
            }
        }
        for flavour in flavours {
            let suffix = flavour.isEmpty ? "" : "-\(flavour)"
            guard let main = runner.locate("iptables\(suffix)"), let save = runner.locate("iptables\(suffix)-save"),
                  let restore = runner.locate("iptables\(suffix)-restore")
            else { continue }
            let versionResult = try? runner.run(main, ["--version"], input: nil)
            let version = versionResult.map { $0.output.trimming(" \n\t") } ?? ""
            let kind = !flavour.isEmpty ? flavour : version.contains("nf_tables") ? "nft" : version.contains("legacy") ? "legacy" : "unknown"
            return IptablesBackend(
                kind: kind, program: "iptables\(suffix)", save: save, restore: restore,
                save6: runner.locate("ip6tables\(suffix)-save"), restore6: runner.locate("ip6tables\(suffix)-restore"),
                version: version.isEmpty ? "version unknown" : version)
        }
        let looked = choice == .auto ? "iptables, iptables-nft or iptables-legacy" : "iptables-\(choice.rawValue)"
        throw Unavailable(description: """
            no \(looked) found (with its -save and -restore programs) in PATH, /usr/sbin or /sbin; \
            install the iptables package (Debian: apt-get install iptables)
            """)
    }

    /// Rules (`-A` lines) the flavour holds in this namespace, every table.
    static func ruleCount(flavour: String, runner: any CommandRunner) throws -> Int {
        guard let save = runner.locate("iptables-\(flavour)-save") else { return 0 }
        let result = try runner.run(save, [], input: nil)
        guard result.status == 0 else { return 0 }
        return result.output.split(separator: "\n").filter { $0.hasPrefix("-A ") }.count
    }
}
