#if canImport(Glibc)
import Glibc
#endif

/// The IPv6 source the sidecar binds for its hop to the app (`::6`), which the nat rules leave
/// uncaptured. IPv4 needs no address (all of 127.0.0.0/8 is on `lo`), but `lo` holds only `::1`,
/// so Istio adds `::6/128` (`configureIPv6Addresses` in istio-iptables' run.go) and so do we.
public protocol PassthroughAddress: Sendable {
    /// Adds it; false when it was already there.
    func add() throws(CaptureInstaller.Failure) -> Bool
    /// Removes it; false when it was not there.
    func remove() throws(CaptureInstaller.Failure) -> Bool
}

/// `::6/128` on `lo`, set with the `SIOCSIFADDR` / `SIOCDIFADDR` ioctls (no iproute2 needed in
/// an init image).
public struct LoopbackPassthroughAddress: PassthroughAddress {
    public init() {}

    /// `struct in6_ifreq` from <linux/ipv6.h>.
    private struct In6IfReq {
        var address: in6_addr
        var prefixLength: UInt32
        var interfaceIndex: Int32
    }

    private static let siocsifaddr: UInt = 0x8916
    private static let siocdifaddr: UInt = 0x8936

    public func add() throws(CaptureInstaller.Failure) -> Bool {
        try change(Self.siocsifaddr, tolerated: EEXIST, what: "add ::6/128 to lo")
    }

    public func remove() throws(CaptureInstaller.Failure) -> Bool {
        try change(Self.siocdifaddr, tolerated: EADDRNOTAVAIL, what: "remove ::6/128 from lo")
    }

    /// false when the kernel answered `tolerated` (already so).
    private func change(_ request: UInt, tolerated: CInt, what: String) throws(CaptureInstaller.Failure) -> Bool {
        #if os(Linux)
        let fd = socket(AF_INET6, CInt(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw CaptureInstaller.Failure("cannot \(what): socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let index = if_nametoindex("lo")
        guard index > 0 else { throw CaptureInstaller.Failure("cannot \(what): no interface lo") }
        var request6 = In6IfReq(address: in6_addr(), prefixLength: 128, interfaceIndex: Int32(index))
        _ = inet_pton(AF_INET6, "::6", &request6.address)
        let rc = withUnsafeMutablePointer(to: &request6) { ioctl(fd, request, UnsafeMutableRawPointer($0)) }
        if rc == 0 { return true }
        let code = errno
        if code == tolerated { return false }
        let hint = code == EPERM || code == EACCES ? " (needs root or NET_ADMIN)" : ""
        throw CaptureInstaller.Failure("cannot \(what): \(String(cString: strerror(code)))\(hint)")
        #else
        throw CaptureInstaller.Failure("cannot \(what): Linux only")
        #endif
    }
}
