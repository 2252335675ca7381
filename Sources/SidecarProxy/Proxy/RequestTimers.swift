import NIOCore

/// Where the proxy's request deadlines (request timeout, per-try timeout, `grpc-timeout`) read
/// the time and schedule their wake-ups. In the product it is the connection's event loop; a
/// test passes its own (`ManualRequestTimers` in MeshtraceTesting), so a timeout fires when the
/// test moves the clock, after the events it waits for, and never because a loaded machine ran
/// the loop late or early relative to the app the test set up.
public protocol RequestTimers: Sendable {
    /// The time deadlines are measured from.
    func now(on loop: any EventLoop) -> NIODeadline
    /// Runs `task` on `loop` once `deadline` has passed. Called on `loop`.
    func schedule(at deadline: NIODeadline, on loop: any EventLoop, _ task: @escaping () -> Void) -> Scheduled<Void>
}

/// The event loop's own clock and timers.
public struct EventLoopTimers: RequestTimers {
    public init() {}

    public func now(on loop: any EventLoop) -> NIODeadline { loop.now }

    public func schedule(at deadline: NIODeadline, on loop: any EventLoop, _ task: @escaping () -> Void) -> Scheduled<Void> {
        loop.assumeIsolated().scheduleTask(deadline: deadline, task)
    }
}
