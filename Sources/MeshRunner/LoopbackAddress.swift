#if canImport(Glibc)
import Glibc
#endif

/// 127.0.0.1:port as the `sockaddr` the blocking socket calls take, for the few places the
/// runner works below NIO (free-port checks, health probes).
enum LoopbackAddress {
    static func make(port: Int) -> sockaddr_in {
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(truncatingIfNeeded: port).bigEndian
        return addr
    }

    /// Calls `body` (bind, connect) with the address of 127.0.0.1:port and its length.
    static func with<R>(port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        var addr = make(port: port)
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
    }
}
