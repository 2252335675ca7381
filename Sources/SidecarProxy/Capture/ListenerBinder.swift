import NIOCore
import NIOPosix

/// Where a data-plane listener's socket is made. A socket belongs to the network namespace of
/// the thread that creates it, and NIO creates a listener's socket on the thread that calls
/// `bind`. `meshtrace up` with `capture: netns` runs each service's sidecar in its own process
/// but listening inside the service's namespace: its binder calls `bind` from a thread there.
/// Metrics and admin listeners are not affected (they stay where the process is).
public protocol ListenerBinder: Sendable {
    func bind(_ make: @escaping @Sendable () -> EventLoopFuture<any Channel>) async throws -> any Channel
}

/// Binds on the calling thread: the process's own namespace.
public struct CurrentNamespaceBinder: ListenerBinder {
    public init() {}

    public func bind(_ make: @escaping @Sendable () -> EventLoopFuture<any Channel>) async throws -> any Channel {
        try await make().get()
    }
}

/// A bootstrap handed to the binder's thread: built on this one, then used once there and
/// never again here, so it is never touched by two threads at once.
struct BootstrapHandover: @unchecked Sendable {
    let bootstrap: ServerBootstrap

    func bind(host: String, port: Int) -> EventLoopFuture<any Channel> {
        bootstrap.bind(host: host, port: port)
    }
}
