/// Sends GET requests at a steady rate, as `meshtrace demo --requests N --rate R` does, so
/// the trace view and service graph have something to show.
///
/// Requests start on a fixed schedule (`i / rate` seconds after the first) with at most
/// `concurrency` in flight; when the mesh is slower than the rate, new requests wait for a
/// free slot instead of piling up, so a stalled service cannot make the generator unbounded.
public struct TrafficGenerator: Sendable {
    public var url: String
    /// Total to send; nil sends until the task is cancelled.
    public var requests: Int?
    /// Requests started per second; values <= 0 mean "as fast as concurrency allows".
    public var rate: Double
    public var concurrency: Int
    public var headers: [(String, String)]
    public var client: DemoHTTPClient

    public init(
        url: String, requests: Int?, rate: Double, concurrency: Int = 16, headers: [(String, String)] = [],
        client: DemoHTTPClient = DemoHTTPClient()
    ) {
        self.url = url
        self.requests = requests
        self.rate = rate
        self.concurrency = max(1, concurrency)
        self.headers = headers
        self.client = client
    }

    public struct Report: Sendable, Equatable {
        /// Responses by HTTP status.
        public var statusCounts: [Int: Int] = [:]
        /// Requests that got no HTTP response (connect failure, timeout).
        public var transportErrors = 0
        /// The most recent transport error, to show the user why.
        public var lastError: String?

        public var sent: Int { statusCounts.values.reduce(0, +) + transportErrors }
        public var succeeded: Int { statusCounts.filter { (200..<300).contains($0.key) }.values.reduce(0, +) }
    }

    /// Runs to completion (or cancellation) and returns the counts. `onResult` sees each
    /// outcome as it arrives (status, or nil with the error), e.g. for a progress line.
    public func run(onResult: @escaping @Sendable (Int?, String?) -> Void = { _, _ in }) async -> Report {
        let start = ContinuousClock.now
        let interval: Duration? = rate > 0 ? .nanoseconds(Int64(1e9 / rate)) : nil
        var report = Report()

        func record(_ outcome: Outcome) {
            switch outcome {
            case .status(let status):
                report.statusCounts[status, default: 0] += 1
                onResult(status, nil)
            case .failed(let reason):
                report.transportErrors += 1
                report.lastError = reason
                onResult(nil, reason)
            case .cancelled:
                break
            }
        }

        await withTaskGroup(of: Outcome.self) { group in
            var inFlight = 0
            var index = 0
            while requests.map({ index < $0 }) ?? true, !Task.isCancelled {
                if let interval {
                    // Pacing, not synchronisation: wait for this request's slot in the schedule.
                    let due = start + interval * index
                    if due > ContinuousClock.now {
                        do { try await Task.sleep(until: due, clock: .continuous) } catch { break }
                    }
                }
                while inFlight >= concurrency, let outcome = await group.next() {
                    inFlight -= 1
                    record(outcome)
                }
                let client = self.client, url = self.url, headers = self.headers
                group.addTask {
                    do {
                        return .status(try await client.get(url, headers: headers).status)
                    } catch {
                        return Task.isCancelled ? .cancelled : .failed("\(error)")
                    }
                }
                inFlight += 1
                index += 1
            }
            while let outcome = await group.next() { record(outcome) }
        }
        return report
    }

    enum Outcome: Sendable {
        case status(Int)
        case failed(String)
        case cancelled
    }
}
