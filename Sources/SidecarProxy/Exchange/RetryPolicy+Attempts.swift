/// The per-attempt retry decisions both protocols take (HTTP/1 in `ProxyHandler+Upstream`,
/// HTTP/2 in `HTTP2StreamRelay+Retry`), so a request is retried on the same answers, timeouts
/// and body sizes whichever protocol carries it.
extension RetryPolicy {
    /// Whether an answer with `status` is dropped and the request sent again (the per-request
    /// limit and the budget still have their say, `tryStart`): a listed status, not inbound, and
    /// a request whose whole body has arrived and was kept (at most `replayLimit`, as Envoy
    /// retries only a request that fit its buffer).
    func retries(status: Int, direction: ProxyDirection, requestEnded: Bool, replayable: Bool) -> Bool {
        retries(status: status, direction: direction) && requestEnded && replayable
    }

    /// Whether an attempt that got no answer within the per-try timeout can go out again: not
    /// inbound, and its body kept whole (or there was none).
    func resendsAfterTimeout(direction: ProxyDirection, replayable: Bool, requestBytes: Int) -> Bool {
        retriesTimeouts(direction: direction) && (replayable || requestBytes == 0)
    }

    /// Takes one retry for a request already retried `retries` times: within `maxRetries` and
    /// the cluster's `retry_budget`. On true the caller holds a budget slot until the retry has
    /// gone out (`ClusterState.retryFinished`).
    func tryStart(after retries: Int, in cluster: ClusterState) -> Bool {
        allowsAnother(after: retries) && cluster.tryStartRetry(percent: budgetPercent, minConcurrency: minConcurrency)
    }
}
