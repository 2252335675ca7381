#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A loopback port that refuses connections for the rest of the test process: a socket is bound
/// to it and never listens. A port that was bound and then closed is free again at once, and a
/// server another test starts in parallel can be given it and answer where the test expects a
/// refusal.
public func refusingPort() throws -> Int {
    let (port, descriptor) = try refusingSocket()
    refusingSockets.withLock { $0.append(descriptor) }  // never closed: the port stays taken
    return port
}

/// A refusing port whose socket the caller takes over: listening on it later (NIO's
/// `ServerBootstrap.withBoundSocket`) turns the port from refusing to accepting without it ever
/// being free for another test to take.
public func refusingSocket() throws -> (port: Int, descriptor: Int32) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw RefusingPortError(call: "socket", errno: errno) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    let named = bound == 0
        ? withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        : -1
    guard bound == 0, named == 0 else {
        let code = errno
        close(fd)
        throw RefusingPortError(call: bound == 0 ? "getsockname" : "bind", errno: code)
    }
    return (Int(UInt16(bigEndian: address.sin_port)), fd)
}

public struct RefusingPortError: Error, CustomStringConvertible {
    public let call: String
    public let errno: Int32
    public var description: String { "refusingPort: \(call) failed (errno \(errno))" }
}

/// The sockets behind `refusingPort`, open until the process exits.
private let refusingSockets = Mutex<[Int32]>([])
