import Foundation
import NIOCore
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import SidecarProxy

/// `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST` against the kernel: a namespace of the test's own
/// with one veth interface (the kernel here has no dummy driver) (10.99.0.1/24, fd00:99::1/64) and nat `REDIRECT` rules that send
/// connections for 10.99.0.2:9 and [fd00:99::2]:9 to a listener on port 15001. The listener
/// then asks each accepted socket where it was going.
@Suite(.serialized, .enabled(if: NetworkNamespace.available, "needs root and iproute2 for a network namespace"))
struct OriginalDestinationTests {
    static func namespace() throws -> NetworkNamespace {
        let ns = try NetworkNamespace("origdst")
        do {
            try ns.exec(["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"])
            try ns.exec(["ip", "link", "set", "d1", "up"])
            try ns.exec(["ip", "addr", "add", "10.99.0.1/24", "dev", "d0"])
            try ns.exec(["ip", "-6", "addr", "add", "fd00:99::1/64", "dev", "d0", "nodad"])
            try ns.exec(["ip", "link", "set", "d0", "up"])
            try ns.exec(["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.99.0.2", "--dport", "9", "-j", "REDIRECT", "--to-ports", "15001"])
            try ns.exec(["ip6tables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "fd00:99::2", "--dport", "9", "-j", "REDIRECT", "--to-ports", "15001"])
        } catch {
            ns.remove()
            throw error
        }
        return ns
    }

    /// Connects to `target` through the redirect and reads the accepted socket's original
    /// destination; the listener is on `listenHost`:15001.
    static func originalDestination(listenHost: String, target: String) throws -> String {
        let listener = try PlainSocket.listen(host: listenHost, port: 15001)
        defer { close(listener) }
        let client = try PlainSocket.connect(host: target, port: 9)
        defer { close(client) }
        let accepted = try PlainSocket.accept(listener)
        defer { close(accepted) }
        let address = try OriginalDestination.read(fd: accepted)
        return "\(address.ipAddress ?? "?") \(address.port ?? 0)"
    }

    /// In a fresh namespace, on threads of their own (namespace set-up and socket calls block).
    static func inNamespace<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await NetworkNamespace.offPool {
            let ns = try Self.namespace()
            defer { ns.remove() }
            return try ns.run(body)
        }
    }

    @Test func ipv4ConnectionOnAnIPv4Listener() async throws {
        #expect(try await Self.inNamespace { try Self.originalDestination(listenHost: "0.0.0.0", target: "10.99.0.2") } == "10.99.0.2 9")
    }

    @Test func ipv6ConnectionOnAnIPv6Listener() async throws {
        #expect(try await Self.inNamespace { try Self.originalDestination(listenHost: "::", target: "fd00:99::2") } == "fd00:99::2 9")
    }

    /// A dual-stack listener sees an IPv4 client as `::ffff:10.99.0.1`; its conntrack entry is IPv4.
    @Test func ipv4ConnectionOnADualStackListener() async throws {
        #expect(try await Self.inNamespace { try Self.originalDestination(listenHost: "::", target: "10.99.0.2") } == "10.99.0.2 9")
    }

    /// A UDP socket has no original destination: a clear error, no crash.
    @Test func aSocketThatWasNotRedirectedGivesAnError() async throws {
        let message = try await Self.inNamespace { () -> String in
            let fd = socket(AF_INET, CInt(SOCK_DGRAM.rawValue), 0)
            defer { close(fd) }
            do {
                _ = try OriginalDestination.read(fd: fd)
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        #expect(message.hasPrefix("SO_ORIGINAL_DST:"), "\(message)")
    }
}
