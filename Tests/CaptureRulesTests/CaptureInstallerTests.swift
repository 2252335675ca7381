import Synchronization
import Testing

@testable import CaptureRules

/// The installer's steps against a fake nat table: what it feeds `iptables-restore`, that a
/// second run replaces the first, that cleanup removes exactly Meshtrace's part, and that a
/// failure on IPv6 takes the IPv4 rules back out. Real iptables in a namespace is
/// `tests/interop/test_capture_iptables.py`.
@Suite struct CaptureInstallerTests {
    /// `iptables-save -t nat` as the kernel would show it after a restore, kept per family.
    final class FakeIptables: CommandRunner, @unchecked Sendable {  // state behind a Mutex
        struct State {
            var tables: [String: [String]] = ["v4": [], "v6": []]
            var scripts: [String] = []
            var failRestore6 = false
        }
        let state = Mutex(State())

        func locate(_ program: String) -> String? { "/usr/sbin/" + program }

        func run(_ path: String, _ arguments: [String], input: String?) throws -> CommandResult {
            let family = path.contains("ip6tables") ? "v6" : "v4"
            if arguments == ["--version"] { return CommandResult(status: 0, output: "iptables v1.8.9 (nf_tables)\n", error: "") }
            return state.withLock { s in
                if path.hasSuffix("-save") {
                    let rules = s.tables[family] ?? []
                    let chains = Set(rules.map { String(CaptureInstaller.chainOf($0)) }).filter { $0.hasPrefix("MESHTRACE_") } .union(s.tables[family + "chains"] ?? [])
                    var text = "*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n"
                    for chain in chains.sorted() { text += ":\(chain) - [0:0]\n" }
                    text += rules.map { $0 + "\n" }.joined() + "COMMIT\n"
                    return CommandResult(status: 0, output: text, error: "")
                }
                let script = input ?? ""
                s.scripts.append(script)
                if family == "v6" && s.failRestore6 {
                    return CommandResult(status: 4, output: "", error: "ip6tables-restore v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n")
                }
                var rules = s.tables[family] ?? []
                var chains = Set(s.tables[family + "chains"] ?? [])
                for line in script.split(separator: "\n").map(String.init) {
                    if line.hasPrefix(":") {
                        let chain = String(line.dropFirst().prefix { $0 != " " })
                        chains.insert(chain)
                        rules.removeAll { CaptureInstaller.chainOf($0) == chain }  // declaring flushes
                    } else if line.hasPrefix("-A ") {
                        rules.append(line)
                    } else if line.hasPrefix("-D ") {
                        if let i = rules.firstIndex(of: "-A " + line.dropFirst(3)) { rules.remove(at: i) }
                    } else if line.hasPrefix("-F ") {
                        let chain = line.dropFirst(3)
                        rules.removeAll { CaptureInstaller.chainOf($0) == chain }
                    } else if line.hasPrefix("-X ") {
                        chains.remove(String(line.dropFirst(3)))
                    }
                }
                s.tables[family] = rules
                s.tables[family + "chains"] = Array(chains)
                return CommandResult(status: 0, output: "", error: "")
            }
        }
    }

    final class FakeAddress: PassthroughAddress, @unchecked Sendable {  // state behind a Mutex
        let present = Mutex(false)
        func add() throws(CaptureInstaller.Failure) -> Bool { present.withLock { p in defer { p = true }; return !p } }
        func remove() throws(CaptureInstaller.Failure) -> Bool { present.withLock { p in defer { p = false }; return p } }
    }

    static func installer(_ fake: FakeIptables, _ address: FakeAddress = FakeAddress()) throws -> CaptureInstaller {
        let backend = try IptablesBackend.detect(.nft, runner: fake)
        return CaptureInstaller(backend: backend, runner: fake, loopback: address)
    }

    @Test func installingTwiceLeavesOneCopyOfEachRule() throws {
        let fake = FakeIptables()
        // Someone else's rule in the same table stays untouched.
        fake.state.withLock { $0.tables["v4"] = ["-A OUTPUT -d 192.0.2.1/32 -j RETURN"] }
        let installer = try Self.installer(fake)
        let plan = NatRulePlan(CaptureOptions(), family: .v4)
        _ = try installer.install(CaptureOptions(), families: [.v4])
        _ = try installer.install(CaptureOptions(), families: [.v4])
        let rules = fake.state.withLock { $0.tables["v4"] ?? [] }
        #expect(rules.filter { $0 == "-A OUTPUT -j MESHTRACE_OUTPUT" }.count == 1)
        #expect(rules.count == plan.rules.count + 1)
        #expect(rules.contains("-A OUTPUT -d 192.0.2.1/32 -j RETURN"))
        // The second run deleted the first run's jumps in the same transaction.
        let second = fake.state.withLock { $0.scripts.last ?? "" }
        #expect(second.contains("-D PREROUTING -p tcp -j MESHTRACE_INBOUND\n"))
        #expect(second.contains("-D OUTPUT -j MESHTRACE_OUTPUT\n"))
    }

    @Test func cleanupRemovesExactlyWhatWasAdded() throws {
        let fake = FakeIptables()
        fake.state.withLock { $0.tables["v4"] = ["-A OUTPUT -d 192.0.2.1/32 -j RETURN"] }
        let address = FakeAddress()
        let installer = try Self.installer(fake, address)
        _ = try installer.install(CaptureOptions(), families: [.v4, .v6])
        #expect(address.present.withLock { $0 })
        let report = try installer.cleanup(families: [.v4, .v6])
        #expect(fake.state.withLock { $0.tables["v4"] } == ["-A OUTPUT -d 192.0.2.1/32 -j RETURN"])
        #expect(fake.state.withLock { $0.tables["v6"] } == [])
        #expect(fake.state.withLock { ($0.tables["v4chains"] ?? []) + ($0.tables["v6chains"] ?? []) }.isEmpty)
        #expect(!address.present.withLock { $0 })
        #expect(report.contains("removed ::6/128 from lo"))
        // Nothing left: a second cleanup says so and changes nothing.
        #expect(try installer.cleanup(families: [.v4]) == ["IPv4: no Meshtrace nat rules to remove"])
    }

    /// IPv6 refused: the IPv4 rules just installed come out again, and the error says why.
    @Test func aFailureOnIPv6UndoesIPv4() throws {
        let fake = FakeIptables()
        fake.state.withLock { $0.failRestore6 = true }
        let address = FakeAddress()
        let installer = try Self.installer(fake, address)
        let error = #expect(throws: CaptureInstaller.Failure.self) { try installer.install(CaptureOptions(), families: [.v4, .v6]) }
        #expect(error?.description.contains("ip6tables-nft-restore --noflush failed (exit 4)") == true, "\(String(describing: error))")
        #expect(error?.description.contains("hint: installing capture rules needs root") == true)
        #expect(fake.state.withLock { $0.tables["v4"] } == [])
        #expect(!address.present.withLock { $0 })
    }

    @Test func theSaveOutputOfARealTableIsRead() {
        let save = """
            # Generated by iptables-nft-save v1.8.9 (nf_tables) on Mon Jan  1 00:00:00 2026
            *nat
            :PREROUTING ACCEPT [0:0]
            :INPUT ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :POSTROUTING ACCEPT [0:0]
            :MESHTRACE_INBOUND - [0:0]
            :MESHTRACE_OUTPUT - [0:0]
            :KUBE-SERVICES - [0:0]
            -A PREROUTING -p tcp -j MESHTRACE_INBOUND
            -A OUTPUT -j MESHTRACE_OUTPUT
            -A OUTPUT -j KUBE-SERVICES
            -A MESHTRACE_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN
            COMMIT
            *filter
            -A INPUT -j MESHTRACE_NOT_NAT
            COMMIT
            """
        let state = NatTableState(save: save)
        #expect(state.ourChains == ["MESHTRACE_INBOUND", "MESHTRACE_OUTPUT"])
        #expect(state.jumpsIntoOurChains == ["PREROUTING -p tcp -j MESHTRACE_INBOUND", "OUTPUT -j MESHTRACE_OUTPUT"])
        #expect(state.ourRules == ["-A MESHTRACE_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN"])
        #expect(state.cleanupScript == """
            *nat
            -D PREROUTING -p tcp -j MESHTRACE_INBOUND
            -D OUTPUT -j MESHTRACE_OUTPUT
            -F MESHTRACE_INBOUND
            -F MESHTRACE_OUTPUT
            -X MESHTRACE_INBOUND
            -X MESHTRACE_OUTPUT
            COMMIT

            """)
    }

    @Test func aMissingIptablesIsNamed() {
        struct Nothing: CommandRunner {
            func locate(_ program: String) -> String? { nil }
            func run(_ path: String, _ arguments: [String], input: String?) throws -> CommandResult { CommandResult(status: 127, output: "", error: "") }
        }
        let error = #expect(throws: IptablesBackend.Unavailable.self) { try IptablesBackend.detect(.auto, runner: Nothing()) }
        #expect(error?.description.contains("install the iptables package") == true)
    }

    @Test func badFlagValuesNameTheFlag() {
        #expect(throws: CaptureOptions.Invalid("--inbound-capture-port: expected a port 1-65535, got '99999'")) {
            try CaptureOptions.port("99999", flag: "inbound-capture-port")
        }
        #expect(throws: CaptureOptions.Invalid("--exclude-outbound-cidrs: '10.0.0/8' is not a CIDR (such as 10.0.0.0/8 or fd00::/8)")) {
            try CaptureOptions.cidrs("10.0.0/8", flag: "exclude-outbound-cidrs")
        }
        #expect(throws: CaptureOptions.Invalid("--exclude-outbound-cidrs: '*' is not allowed here; list CIDRs such as 10.0.0.0/8")) {
            try CaptureOptions.cidrs("*", flag: "exclude-outbound-cidrs")
        }
        #expect(throws: CaptureOptions.Invalid("--proxy-uid: expected a numeric id, got 'istio'")) {
            try CaptureOptions.id("istio", flag: "proxy-uid")
        }
        var same = CaptureOptions()
        same.outboundCapturePort = 15006
        #expect(throws: CaptureOptions.Invalid.self) { try same.validate() }
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("fd00::/129") == nil)
        #expect(CIDR("10.1.2.3")?.description == "10.1.2.3/32")
    }
}
