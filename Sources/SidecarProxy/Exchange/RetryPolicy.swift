import NIOCore

/// When a request goes out again, and after how long: Envoy's retry policy as Istio sets it
/// for a sidecar (retries on connect failure and on listed statuses, `retry_budget`, the
/// default back-off). The per-request side is decided here; the budget is the cluster's, shared
/// across event loops (`ClusterState.tryStartRetry`, with this policy's numbers).
struct RetryPolicy: Sendable, Equatable {
    /// Retries per request (Istio's default outbound policy: 2).
    var maxRetries: Int
    /// Upstream statuses an outbound or gateway request is retried on (Istio's default: 503).
    var retryOnStatus: [Int]
    /// Concurrent retries allowed as a share of the cluster's active requests (`retry_budget`).
    var budgetPercent: Double
    /// The budget's floor (`min_retry_concurrency`).
    var minConcurrency: Int

    /// Request bodies up to this size are kept for a status retry (Envoy buffers a retried
    /// request up to its connection buffer limit; a sidecar aiming at 30 MB keeps less).
    static let replayLimit = 64 * 1024
    /// Envoy's default back-off: 25 ms base interval, doubling per retry, capped at 10× the
    /// base in Envoy; here the doubling stops after 6 retries.
    static let backoffBaseMillis: Int64 = 25

    init(maxRetries: Int, retryOnStatus: [Int], budgetPercent: Double, minConcurrency: Int) {
        self.maxRetries = maxRetries
        self.retryOnStatus = retryOnStatus
        self.budgetPercent = budgetPercent
        self.minConcurrency = minConcurrency
    }

    init(_ config: SidecarConfiguration) {
        self.init(
            maxRetries: config.maxRetries, retryOnStatus: config.retryOnStatus, budgetPercent: config.retryBudgetPercent,
            minConcurrency: config.minRetryConcurrency)
    }

    /// Whether a request that has been retried `retries` times may go out once more (the
    /// budget still has its say).
    func allowsAnother(after retries: Int) -> Bool { retries < maxRetries }

    /// Whether `status` from the upstream drops the response and retries the request. Only
    /// outbound and gateway requests (Istio's inbound policy has no status retries).
    func retries(status: Int, direction: ProxyDirection) -> Bool {
        direction != .inbound && retryOnStatus.contains(status)
    }

    /// Whether this listener keeps request bodies for status retries at all.
    func keepsBodies(direction: ProxyDirection) -> Bool {
        direction != .inbound && !retryOnStatus.isEmpty
    }

    /// Whether an attempt that timed out (per-try) may be sent again: not inbound, and only
    /// with a body that was kept whole (or none).
    func retriesTimeouts(direction: ProxyDirection) -> Bool { direction != .inbound }

    /// The flag a failure that used up its retries carries besides its own (Envoy's `URX`):
    /// only when retries were configured.
    var exhaustedFlag: String? { maxRetries > 0 ? "URX" : nil }

    /// The wait before retry number `retry` (1-based): half the interval plus up to one
    /// interval of jitter, the interval doubling per retry (Envoy's full-jitter back-off).
    static func backoff(retry: Int, random: inout some RandomNumberGenerator) -> TimeAmount {
        let base = backoffBaseMillis << Int64(min(max(retry - 1, 0), 6))
        return .milliseconds(base / 2 + Int64(random.next() % UInt64(max(base, 1))))
    }

    /// " after 1 retry", " after 2 retries", or nothing: the tail of a local reply's reason.
    static func afterRetries(_ n: Int) -> String {
        n == 0 ? "" : n == 1 ? " after 1 retry" : " after \(n) retries"
    }
}
