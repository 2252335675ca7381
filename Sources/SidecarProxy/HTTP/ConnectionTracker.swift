import NIOCore
import Synchronization

/// Counts downstream connections of every listener against one cap, and remembers them so
/// shutdown can ask each to drain.
public final class ConnectionTracker: Sendable {
    private let state: Mutex<State>

    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

    public let limit: Int

    public init(limit: Int) {
        self.limit = limit
        self.state = Mutex(State())
    }

    public var count: Int { state.withLock { $0.channels.count } }

    /// Registers a new connection; false when over the cap or draining (the caller closes it).
    func admit(_ channel: any Channel) -> Bool {
        let admitted = state.withLock { s -> Bool in
            guard !s.draining, s.channels.count < limit else { return false }
            s.channels[ObjectIdentifier(channel)] = channel
            return true
        }
        if admitted {
            // The tracker, not its Mutex, is captured: a Mutex cannot be copied into a closure.
            channel.closeFuture.whenComplete { [self] _ in
                _ = self.state.withLock { $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
            }
        }
        return admitted
    }

    /// Tells every connection to finish its request in progress and then close.
    func drainAll() {
        // Queued under the lock: whoever sees `isDraining` knows every connection's event is on
        // its loop's queue (a test orders its next step after them with one task per loop).
        state.withLock { s in
            s.draining = true
            for channel in s.channels.values {
                channel.eventLoop.execute { channel.pipeline.syncOperations.fireUserInboundEventTriggered(DrainEvent()) }
            }
        }
    }

    /// Whether `drainAll` has run.
    var isDraining: Bool { state.withLock { $0.draining } }

    func closeAll() {
        let channels = state.withLock { Array($0.channels.values) }
        for channel in channels { channel.close(promise: nil) }
    }
}

/// Sent to each downstream connection on shutdown.
struct DrainEvent: Sendable {}
