import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// The address a connection was sent to before an iptables `REDIRECT` rule turned it toward a
/// capture listener: the kernel keeps it in the connection's conntrack entry, and
/// `SO_ORIGINAL_DST` (IPv4) or `IP6T_SO_ORIGINAL_DST` (IPv6) reads it back, as Envoy's
/// `original_dst` listener filter and linkerd2-proxy's `orig_dst.rs` do.
public enum OriginalDestination {
    /// `SO_ORIGINAL_DST` from <linux/netfilter_ipv4.h> at level `SOL_IP`; Glibc does not export it.
    static let soOriginalDst: CInt = 80
    /// `IP6T_SO_ORIGINAL_DST` from <linux/netfilter_ipv6/ip6_tables.h> at level `SOL_IPV6`.
    static let ip6tSoOriginalDst: CInt = 80

    public struct Unreadable: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Reads the original destination of an accepted TCP socket. An IPv6 socket with an IPv4
    /// peer (a v4-mapped address on a dual-stack listener) is asked the IPv4 way, as linkerd
    /// does: the conntrack entry is IPv4.
    public static func read(fd: CInt) throws(Unreadable) -> SocketAddress {
        #if os(Linux)
        var local = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else { throw failure("getsockname") }
        switch CInt(local.ss_family) {
        case AF_INET:
            return try ipv4(fd)
        case AF_INET6:
            let mapped = withUnsafeBytes(of: &local) { raw -> Bool in
                let sin6 = raw.load(as: sockaddr_in6.self)
                return isV4Mapped(sin6.sin6_addr)
            }
            return mapped ? try ipv4(fd) : try ipv6(fd)
        default:
            throw Unreadable(description: "not a TCP/IP socket (address family \(local.ss_family))")
        }
        #else
        throw Unreadable(description: "transparent capture needs Linux (SO_ORIGINAL_DST)")
        #endif
    }

    #if os(Linux)
    private static func ipv4(_ fd: CInt) throws(Unreadable) -> SocketAddress {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard getsockopt(fd, CInt(IPPROTO_IP), soOriginalDst, &address, &length) == 0 else {
            throw failure("SO_ORIGINAL_DST")
        }
        return SocketAddress(address, host: "")
    }

    private static func ipv6(_ fd: CInt) throws(Unreadable) -> SocketAddress {
        var address = sockaddr_in6()
        var length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        guard getsockopt(fd, CInt(IPPROTO_IPV6), ip6tSoOriginalDst, &address, &length) == 0 else {
            throw failure("IP6T_SO_ORIGINAL_DST")
        }
        return SocketAddress(address, host: "")
    }

    /// `::ffff:a.b.c.d`.
    static func isV4Mapped(_ address: in6_addr) -> Bool {
        withUnsafeBytes(of: address) { bytes in
            bytes.prefix(10).allSatisfy { $0 == 0 } && bytes[10] == 0xff && bytes[11] == 0xff
        }
    }

    private static func failure(_ call: String) -> Unreadable {
        let code = errno
        let reason = String(cString: strerror(code))
        // ENOENT: conntrack holds no entry for the connection, so nothing redirected it.
        let hint = code == ENOENT ? " (the connection was not redirected by iptables)" : ""
        return Unreadable(description: "\(call): \(reason)\(hint)")
    }
    #endif
}
