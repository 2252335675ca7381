import NIOCore
import SidecarProxy
import Synchronization

/// Request deadlines on a clock the test moves (`advance(by:)`), for a `SidecarServer` under
/// test: a timeout fires after the events the test waited for, whatever the machine's load,
/// and not at all until the test says. Everything else in the proxy keeps real time.
public final class ManualRequestTimers: RequestTimers {
    private struct Pending {
        var id: Int
        var deadline: NIODeadline
        var loop: any EventLoop
        var task: NIOLoopBound<() -> Void>
        var promise: EventLoopPromise<Void>
    }

    private struct State {
        var now: NIODeadline
        var nextID = 0
        var pending: [Pending] = []
    }

    private let state: Mutex<State>

    /// The clock starts at an arbitrary fixed time: only differences matter.
    public init() {
        state = Mutex(State(now: .uptimeNanoseconds(1_000_000_000_000)))
    }

    deinit {
        // Timers never fired nor cancelled (a connection still open when the test ended): their
        // promises must be completed, or NIO reports them leaked.
        for timer in state.withLock({ $0.pending }) { timer.promise.fail(EventLoopError.cancelled) }
    }

    public func now(on loop: any EventLoop) -> NIODeadline { state.withLock { $0.now } }

    public func schedule(at deadline: NIODeadline, on loop: any EventLoop, _ task: @escaping () -> Void) -> Scheduled<Void> {
        let promise = loop.makePromise(of: Void.self)
        let id = state.withLock { s in
            s.nextID += 1
            s.pending.append(Pending(id: s.nextID, deadline: deadline, loop: loop, task: NIOLoopBound(task, eventLoop: loop), promise: promise))
            return s.nextID
        }
        return Scheduled(promise: promise) { [weak self] in
            guard let cancelled = self?.state.withLock({ s in s.pending.firstIndex { $0.id == id }.map { s.pending.remove(at: $0) } }) else { return }
            cancelled.promise.fail(EventLoopError.cancelled)
        }
    }

    /// Timers scheduled and neither fired nor cancelled.
    public var pendingCount: Int { state.withLock { $0.pending.count } }

    /// How far the earliest pending timer is from now (nil: none pending).
    public var nextDue: TimeAmount? {
        state.withLock { s in s.pending.map(\.deadline).min().map { $0 - s.now } }
    }

    /// Moves the clock forward and runs the timers now due, each on its loop, in deadline
    /// order; returns once they have run, with how many did.
    @discardableResult
    public func advance(by amount: TimeAmount) async -> Int {
        let due = state.withLock { s in
            s.now = s.now + amount
            let now = s.now
            let due = s.pending.filter { $0.deadline <= now }.sorted { $0.deadline < $1.deadline }
            s.pending.removeAll { $0.deadline <= now }
            return due
        }
        for timer in due {
            let task = timer.task
            try? await timer.loop.submit { task.value() }.get()
            timer.promise.succeed(())
        }
        return due.count
    }
}
