import NIOCore
import NIOHTTP2

/// An HTTP/2 call's attempts: a retryable status or a per-try timeout drops the attempt's
/// upstream stream (before anything of its answer reaches the client) and the kept request
/// (`HTTP2RequestReplay`) goes out again after Envoy's back-off, to an endpoint the call has not
/// tried (`HTTP2Connection+Retry.swift`). The decisions, limits, budget and back-off are
/// HTTP/1's (`RetryPolicy`, `RetryPolicy+Attempts`, `Deadlines`). As for HTTP/1, the call keeps
/// one span: `retry.count` and the endpoint of the attempt that answered.
extension HTTP2StreamRelay {
    /// The attempt answered `status` (a final one, nothing sent to the client yet): whether it
    /// is dropped for a retry. When the status is retryable but no retry is left, the answer
    /// goes through flagged `URX`, as HTTP/1's does.
    func retriesAnswer(status: Int) -> Bool {
        let policy = snapshot.retryPolicy
        guard policy.retries(status: status, direction: connection.runtime.direction, requestEnded: requestEnded, replayable: replay.replayable)
        else { return false }
        if startRetry() {
            resend()
            return true
        }
        if let exhausted = policy.exhaustedFlag { hop?.responseFlags.append(exhausted) }
        return false
    }

    /// The attempt's connection could not be had (a side connection's connect failed).
    func attemptFailed(status: Int, flags: [String], reason: String) {
        guard !finished else { return }
        if startRetry() {
            resend()
            return
        }
        var flags = flags
        if let exhausted = snapshot.retryPolicy.exhaustedFlag { flags.append(exhausted) }
        localReply(status: status, flags: flags, reason: reason + RetryPolicy.afterRetries(hop?.retries ?? 0))
    }

    /// Takes a retry within the per-request limit and the budget of the cluster the call is
    /// counted in; the slot is held until the retry goes out.
    private func startRetry() -> Bool {
        let cluster = countedInCluster ?? connection.cluster
        guard let retries = hop?.retries, snapshot.retryPolicy.tryStart(after: retries, in: cluster) else { return false }
        hop?.retries += 1
        retrySlot = cluster
        connection.runtime.stats.update { $0.upstreamRetries += 1 }
        return true
    }

    /// Drops the attempt's upstream stream and sends the kept request again after the back-off.
    private func resend() {
        cancelTryTimer()
        let dropped = upstream
        upstream = nil
        dropped?.reset(.cancel)
        pending = replay.frames
        guard let loop = context?.eventLoop else { return }
        let delay = RetryPolicy.backoff(retry: hop?.retries ?? 1, random: &connection.random)
        retryTask = loop.assumeIsolated().scheduleTask(in: delay) { [self] in
            self.retryTask = nil
            self.releaseRetrySlot()
            guard !self.finished else { return }
            self.connection.openRetryStream(for: self, avoiding: self.triedEndpoints)
        }
    }

    private func releaseRetrySlot() {
        if let cluster = retrySlot {
            retrySlot = nil
            cluster.retryFinished()
        }
    }

    /// The whole request has gone out on this attempt: its per-try timeout starts
    /// (`per_try_timeout`, the same setting HTTP/1 uses), until the answer's headers.
    func armTryTimer() {
        guard tryDeadline == nil, requestEnded, !responseStarted, !finished, upstream != nil, let loop = context?.eventLoop,
              let millis = Deadlines(snapshot.config).millis(.perTry)
        else { return }
        let timers = connection.runtime.timers
        tryDeadline = timers.schedule(at: timers.now(on: loop) + .milliseconds(millis), on: loop) { [self] in
            self.tryDeadline = nil
            self.tryTimedOut()
        }
    }

    func cancelTryTimer() {
        tryDeadline?.cancel()
        tryDeadline = nil
    }

    /// No answer within the per-try timeout: retried when allowed (HTTP/1's rule), else 504
    /// (DEADLINE_EXCEEDED for gRPC) flagged `UT`.
    private func tryTimedOut() {
        guard !finished, !responseStarted, let appStream = upstream else { return }
        let policy = snapshot.retryPolicy
        let direction = connection.runtime.direction
        connection.recordOutcome(.localFailure, endpoint: attemptEndpoint)
        if policy.resendsAfterTimeout(direction: direction, replayable: replay.replayable, requestBytes: hop?.requestBytes ?? 0), startRetry() {
            resend()
            return
        }
        var flags = ["UT"]
        if policy.retriesTimeouts(direction: direction), let exhausted = policy.exhaustedFlag { flags.append(exhausted) }
        upstream = nil
        localReply(status: 504, flags: flags, reason: Deadlines(snapshot.config).reason(.perTry) + RetryPolicy.afterRetries(hop?.retries ?? 0),
                   grpcStatus: 4)
        appStream.reset(.cancel)  // after the reply: its close must not read as the upstream's doing
    }

    /// The call is over: no attempt is pending any more.
    func endAttempts() {
        cancelTryTimer()
        retryTask?.cancel()
        retryTask = nil
        releaseRetrySlot()
    }
}
