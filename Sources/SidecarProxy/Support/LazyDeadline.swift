import NIOCore

/// A deadline checked by one lazily re-armed timer: moving the deadline is a store, and the
/// event loop's timer is only touched when the deadline moves earlier or the timer fires early.
/// Keeps keep-alive traffic from scheduling and cancelling timers (a timerfd syscall) per request.
struct LazyDeadline {
    private let timers: any RequestTimers
    private(set) var deadline: NIODeadline?
    private var timer: Scheduled<Void>?
    private var timerAt: NIODeadline?

    init(timers: any RequestTimers = EventLoopTimers()) {
        self.timers = timers
    }

    /// Sets the deadline; `fire` runs on the loop once it has really passed.
    mutating func set(_ deadline: NIODeadline, loop: any EventLoop, fire: @escaping () -> Void) {
        self.deadline = deadline
        if let timerAt, timerAt <= deadline { return }
        timer?.cancel()
        schedule(at: deadline, loop: loop, fire: fire)
    }

    mutating func clear() {
        deadline = nil
    }

    mutating func cancel() {
        deadline = nil
        timer?.cancel()
        timer = nil
        timerAt = nil
    }

    private mutating func schedule(at when: NIODeadline, loop: any EventLoop, fire: @escaping () -> Void) {
        timerAt = when
        timer = timers.schedule(at: when, on: loop) { fire() }
    }

    /// Called when the timer fires: true when the deadline has passed (act now); otherwise the
    /// timer is re-armed for the moved deadline.
    mutating func timerFired(loop: any EventLoop, fire: @escaping () -> Void) -> Bool {
        timer = nil
        timerAt = nil
        guard let deadline else { return false }
        if deadline <= timers.now(on: loop) {
            self.deadline = nil
            return true
        }
        schedule(at: deadline, loop: loop, fire: fire)
        return false
    }
}
