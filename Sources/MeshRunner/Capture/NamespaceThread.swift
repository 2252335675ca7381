import Foundation
import NIOCore
import NIOPosix
import SidecarProxy

#if canImport(Glibc)
import Glibc
#endif

/// A thread that has entered one network namespace and runs what it is given there: a socket
/// belongs to the namespace of the thread that creates it, and so does every thread that
/// thread starts. `capture: netns` makes each service's listening sockets here (`binder`) and
/// its event loop (`makeEventLoopGroup`), whose threads then make the upstream connections in
/// that namespace too. Nothing else in the process changes namespace.
final class NamespaceThread: @unchecked Sendable {  // jobs and `stopped` are guarded by `condition`
    let namespace: String
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []
    private var stopped = false

    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    /// Starts the thread and waits until it is in `namespace` (`/var/run/netns/NAME`).
    init(namespace: String) throws {
        self.namespace = namespace
        let entered = Result<Void, Failed>.Box()
        let ready = DispatchSemaphore(value: 0)
        let path = "/var/run/netns/\(namespace)"
        let thread = Thread { [self] in
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            if fd < 0 {
                entered.value = .failure(Failed(description: "cannot open \(path): \(String(cString: strerror(errno)))"))
            } else if systemSetns(fd, cloneNewNet) != 0 {
                entered.value = .failure(Failed(description: "cannot enter network namespace \(namespace): \(String(cString: strerror(errno)))"))
            } else {
                entered.value = .success(())
            }
            if fd >= 0 { close(fd) }
            ready.signal()
            guard case .success = entered.value else { return }
            self.serve()
        }
        thread.name = "netns \(namespace)"
        thread.start()
        ready.wait()
        if case .failure(let error) = entered.value { throw error }
    }

    private func serve() {
        while true {
            condition.lock()
            while jobs.isEmpty && !stopped { condition.wait() }
            if jobs.isEmpty && stopped {
                condition.unlock()
                return
            }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    /// Runs `body` on the namespace's thread and returns what it returned.
    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            condition.lock()
            defer { condition.unlock() }
            guard !stopped else {
                continuation.resume(throwing: Failed(description: "the thread of namespace \(namespace) has stopped"))
                return
            }
            jobs.append { continuation.resume(with: Result { try body() }) }
            condition.signal()
        }
    }

    /// An event loop group whose threads live in the namespace.
    func makeEventLoopGroup(threads: Int = 1) async throws -> MultiThreadedEventLoopGroup {
        try await run { MultiThreadedEventLoopGroup(numberOfThreads: threads) }
    }

    /// Ends the thread once the jobs given so far have run.
    func stop() {
        condition.lock()
        stopped = true
        condition.signal()
        condition.unlock()
    }

    deinit { stop() }
}

/// Binds listeners from a thread in the namespace (see `ListenerBinder`).
struct NamespaceBinder: ListenerBinder {
    let thread: NamespaceThread

    func bind(_ make: @escaping @Sendable () -> EventLoopFuture<any Channel>) async throws -> any Channel {
        try await thread.run { make() }.get()
    }
}

/// setns(2) and CLONE_NEWNET, which Glibc's module leaves out (they need _GNU_SOURCE).
@_silgen_name("setns") private func systemSetns(_ fd: CInt, _ nstype: CInt) -> CInt
private let cloneNewNet: CInt = 0x4000_0000

extension Result {
    /// A result one thread writes before a semaphore and another reads after it.
    final class Box: @unchecked Sendable {
        var value: Result?
    }
}
