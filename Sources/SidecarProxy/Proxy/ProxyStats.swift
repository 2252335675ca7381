import Synchronization

/// Counters for `/stats` and for drain (requests in flight).
public final class ProxyStats: Sendable {
    public struct Values: Sendable, Equatable {
        public var requestsTotal = 0
        public var requestsActive = 0
        public var localReplies = 0
        public var rejectedRequests = 0
        public var downstreamConnectionsTotal = 0
        public var downstreamConnectionsRefused = 0
        /// Captured connections closed unserved: no original destination, or one of our own ports.
        public var capturedRefused = 0
        public var upstreamRetries = 0
        public var responseFlags: [String: Int] = [:]
    }

    private let values = Mutex(Values())

    public init() {}

    public var snapshot: Values { values.withLock { $0 } }

    func update(_ change: (inout Values) -> Void) { values.withLock { change(&$0) } }

    /// A request (HTTP/1 exchange or HTTP/2 stream) began: drain waits for it.
    func requestStarted() {
        values.withLock {
            $0.requestsTotal += 1
            $0.requestsActive += 1
        }
    }

    /// A request that `requestStarted` counted has been recorded, with these response flags.
    func requestFinished(flags: [String]) {
        values.withLock { stats in
            stats.requestsActive -= 1
            for flag in flags { stats.responseFlags[flag, default: 0] += 1 }
        }
    }
}
