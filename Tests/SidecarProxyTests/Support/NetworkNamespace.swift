import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A named network namespace for a test (root only), removed by `remove()` whatever happened.
/// Every command runs through `ip netns exec` or `ip -n`, so nothing can reach the machine's own
/// interfaces or nat table; socket code runs on a thread of its own moved into the namespace
/// (`run`), never on a shared one.
final class NetworkNamespace: @unchecked Sendable {  // name is immutable; removal is idempotent
    let name: String
    private var removed = false

    static var available: Bool {
        geteuid() == 0 && ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"].contains { FileManager.default.isExecutableFile(atPath: $0) }
    }

    init(_ label: String) throws {
        name = "mtcap-\(label)-\(getpid())"
        _ = try? Self.command(["ip", "netns", "del", name])  // left by an earlier crashed run of this pid
        try Self.command(["ip", "netns", "add", name])
        try exec(["ip", "link", "set", "lo", "up"])
    }

    deinit { remove() }

    func remove() {
        guard !removed else { return }
        removed = true
        _ = try? Self.command(["ip", "netns", "del", name])
    }

    /// A command inside the namespace; throws with its output when it fails.
    @discardableResult
    func exec(_ arguments: [String]) throws -> String {
        try Self.command(["ip", "netns", "exec", name] + arguments)
    }

    struct CommandFailed: Error, CustomStringConvertible {
        var description: String
    }

    @discardableResult
    static func command(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw CommandFailed(description: "\(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
        }
        return text
    }

    /// Runs `body` on a new thread that has entered the namespace, and waits for it.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        let path = "/var/run/netns/\(name)"
        let result = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            defer { done.signal() }
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else {
                result.value = .failure(CommandFailed(description: "open \(path): \(String(cString: strerror(errno)))"))
                return
            }
            defer { close(fd) }
            guard systemSetns(fd, cloneNewNet) == 0 else {
                result.value = .failure(CommandFailed(description: "setns: \(String(cString: strerror(errno)))"))
                return
            }
            result.value = Result { try body() }
        }
        thread.start()
        done.wait()
        guard let value = result.value else { throw CommandFailed(description: "namespace thread produced nothing") }
        return try value.get()
    }

    private final class ResultBox<T>: @unchecked Sendable {  // written by one thread before the semaphore, read after
        var value: Result<T, any Error>?
    }

    /// Runs blocking work (commands, a namespace thread) on a thread of its own, so the test's
    /// task does not hold one of the few cooperative threads other suites need meanwhile.
    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}

/// setns(2) and CLONE_NEWNET, which Glibc's module leaves out (they need _GNU_SOURCE).
@_silgen_name("setns") private func systemSetns(_ fd: CInt, _ nstype: CInt) -> CInt
private let cloneNewNet: CInt = 0x4000_0000

/// Blocking socket calls for tests that must control each step (no event loop).
enum PlainSocket {
    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    static func check(_ rc: CInt, _ what: String) throws {
        guard rc >= 0 else { throw Failed(description: "\(what): \(String(cString: strerror(errno)))") }
    }

    /// A listening TCP socket on `host:port` (IPv6 hosts contain ':').
    static func listen(host: String, port: Int) throws -> CInt {
        let v6 = host.contains(":")
        let fd = socket(v6 ? AF_INET6 : AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        try check(fd, "socket")
        var one: CInt = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        try withSockaddr(host: host, port: port) { try check(bind(fd, $0, $1), "bind \(host):\(port)") }
        try check(Glibc.listen(fd, 16), "listen")
        return fd
    }

    static func connect(host: String, port: Int) throws -> CInt {
        let fd = socket(host.contains(":") ? AF_INET6 : AF_INET, CInt(SOCK_STREAM.rawValue), 0)
        try check(fd, "socket")
        try withSockaddr(host: host, port: port) { try check(Glibc.connect(fd, $0, $1), "connect \(host):\(port)") }
        return fd
    }

    static func accept(_ fd: CInt) throws -> CInt {
        let accepted = Glibc.accept(fd, nil, nil)
        try check(accepted, "accept")
        return accepted
    }

    static func withSockaddr(host: String, port: Int, _ body: (UnsafePointer<sockaddr>, socklen_t) throws -> Void) throws {
        if host.contains(":") {
            var sin6 = sockaddr_in6()
            sin6.sin6_family = sa_family_t(AF_INET6)
            sin6.sin6_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1 else { throw Failed(description: "bad IPv6 address \(host)") }
            try withUnsafePointer(to: &sin6) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in6>.size)) }
            }
        } else {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = in_port_t(UInt16(port).bigEndian)
            guard inet_pton(AF_INET, host, &sin.sin_addr) == 1 else { throw Failed(description: "bad IPv4 address \(host)") }
            try withUnsafePointer(to: &sin) {
                try $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
    }
}
