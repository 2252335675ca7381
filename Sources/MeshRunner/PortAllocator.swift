#if canImport(Glibc)
import Glibc
#endif

public enum PortAllocator {
    struct NoPort: Error {}

    /// A port for an app to listen on, chosen here and bound later by the app's own process.
    ///
    /// Picked below the kernel's ephemeral range (`ip_local_port_range`) when there is room:
    /// ports from that range are also handed out as the local end of outgoing connections, and
    /// a keep-alive connection that happens to take the app's port keeps the app from binding
    /// it, restart after restart. Falls back to a port the kernel picks when no candidate below
    /// the range is free.
    static func freePort() throws -> Int {
        let (low, _) = ephemeralRange() ?? (32768, 60999)
        let floor = 10_000
        if low - floor >= 1000 {
            for _ in 0..<64 {
                let candidate = Int.random(in: floor..<low)
                if isFree(candidate, strictly: true) { return candidate }
            }
        }
        return try kernelPickedPort()
    }

    /// The kernel's ephemeral port range, from /proc on Linux.
    static func ephemeralRange() -> (Int, Int)? {
        guard let text = try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8) else { return nil }
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).compactMap { Int($0) }
        guard parts.count == 2, parts[0] > 0, parts[0] <= parts[1] else { return nil }
        return (parts[0], parts[1])
    }

    /// A port the kernel considers free right now (bound and released).
    static func kernelPickedPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NoPort() }
        defer { close(fd) }
        guard LoopbackAddress.with(port: 0, { bind(fd, $0, $1) }) == 0 else { throw NoPort() }
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        guard named == 0 else { throw NoPort() }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// True when nothing listens on 127.0.0.1:port and we may bind it.
    /// `strictly` leaves out SO_REUSEADDR, so a port held by any socket at all (a connection's
    /// local end, one in TIME_WAIT) counts as taken, not only a listening one.
    public static func isFree(_ port: Int, strictly: Bool = false) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if !strictly {
            var yes: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        }
        return LoopbackAddress.with(port: port) { bind(fd, $0, $1) } == 0
    }
}
