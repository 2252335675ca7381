import Logging
import NIOCore
import NIOHTTP1
import TraceModel

/// The upstream side of an exchange: a pooled connection, retries with back-off, and the
/// per-try and request deadlines.
extension ProxyHandler {
    func poolLimits(_ snapshot: ConfigurationBox.Snapshot) -> UpstreamPool.Limits {
        UpstreamPool.Limits(
            maxConnections: snapshot.config.maxConnections, maxPending: snapshot.config.maxPendingRequests,
            maxIdle: snapshot.config.maxIdlePerUpstream, connectTimeout: .milliseconds(snapshot.config.connectTimeoutMillis))
    }

    func acquireConnection(_ ex: Exchange) {
        guard let pool = ex.pool else { return }
        switch pool.acquire(limits: poolLimits(ex.snapshot), fresh: ex.freshConnection) {
        case .ready(let conn):
            releaseRetrySlot(ex)
            attach(conn, ex)
        case .waiting(let future, let waiterID):
            ex.waiterID = waiterID
            if waiterID != nil { startRequestTimer(ex) }  // queued: bound the wait
            future.assumeIsolated().whenComplete { [self] result in
                self.connectCompleted(result, ex)
            }
        case .overflow:
            releaseRetrySlot(ex)
            localReply(ex, status: .serviceUnavailable, flags: ["UO"], reason: "upstream overflow: circuit breaker open (max connections and pending requests reached)")
        }
    }

    func connectCompleted(_ result: Result<UpstreamConnection, Error>, _ ex: Exchange) {
        ex.waiterID = nil
        releaseRetrySlot(ex)
        guard exchange === ex, !ex.responseDone, !inactive else {
            if case .success(let conn) = result { ex.pool?.release(conn, reusable: true, maxIdle: ex.snapshot.config.maxIdlePerUpstream) }
            return
        }
        switch result {
        case .success(let conn):
            attach(conn, ex)
        case .failure(let error):
            connectFailed(error, ex)
        }
    }

    func connectFailed(_ error: Error, _ ex: Exchange) {
        if let poolError = error as? PoolError, poolError == .cancelled { return }
        let timedOut: Bool
        if let channelError = error as? ChannelError, case .connectTimeout = channelError { timedOut = true } else { timedOut = false }
        recordOutcome(ex, .localFailure)
        if startRetry(ex) {
            scheduleRetry(ex)
            return
        }
        var flags = [timedOut ? "UT" : "UF"]
        if let exhausted = ex.snapshot.retryPolicy.exhaustedFlag, !ex.isTunnel { flags.append(exhausted) }  // tunnels are not retried
        let what = timedOut ? "connect timeout" : "connection failure (\(error))"
        let retried = RetryPolicy.afterRetries(ex.hop.retries)
        localReply(
            ex, status: timedOut ? .gatewayTimeout : .serviceUnavailable, flags: flags,
            reason: "upstream connect error: \(what) to \(ex.target?.address ?? "?")\(retried)")
    }

    /// Takes a retry if the per-request limit and the cluster's retry budget allow one.
    func startRetry(_ ex: Exchange) -> Bool {
        let policy = ex.snapshot.retryPolicy
        guard let cluster = ex.cluster, policy.tryStart(after: ex.hop.retries, in: cluster) else { return false }
        ex.holdingRetrySlot = true
        ex.hop.retries += 1
        runtime.stats.update { $0.upstreamRetries += 1 }
        return true
    }

    /// The request (head, kept body, end) goes out again, after the back-off.
    func resend(_ ex: Exchange) {
        ex.buffered = ex.replay.map { .body(.byteBuffer($0)) } + [.end(ex.replayTrailers)]
        ex.requestFullySent = false
        scheduleRetry(ex)
    }

    /// Sends the request again after Envoy's default back-off (`RetryPolicy.backoff`).
    func scheduleRetry(_ ex: Exchange) {
        let delay = RetryPolicy.backoff(retry: ex.hop.retries, random: &random)
        ex.retryTask = context?.eventLoop.assumeIsolated().scheduleTask(in: delay) { [self] in
            ex.retryTask = nil
            guard self.exchange === ex, !ex.responseDone else {
                self.releaseRetrySlot(ex)
                return
            }
            self.rebalance(ex)
            self.acquireConnection(ex)
        }
    }

    /// Whether this upstream response is dropped and the request retried (Istio's
    /// `retriable-status-codes`). Only outbound and gateway requests, whose whole body was sent and
    /// kept (`replayLimit`). When no retry is left (limit or budget), the response goes through
    /// flagged `URX`, as Envoy flags it.
    func retriesStatus(_ status: Int, _ ex: Exchange) -> Bool {
        let policy = ex.snapshot.retryPolicy
        guard policy.retries(status: status, direction: runtime.direction, requestEnded: ex.requestEnded, replayable: ex.replayable) else {
            return false
        }
        if startRetry(ex) { return true }
        if let exhausted = policy.exhaustedFlag { ex.hop.responseFlags.append(exhausted) }  // as for connect failures
        return false
    }

    func releaseRetrySlot(_ ex: Exchange) {
        if ex.holdingRetrySlot {
            ex.holdingRetrySlot = false
            ex.cluster?.retryFinished()
        }
    }

    func attach(_ conn: UpstreamConnection, _ ex: Exchange) {
        conn.uses += 1
        ex.discardingResponse = false
        conn.handler.delegate = self
        ex.connection = conn
        ex.hop.upstreamAddress = conn.remoteAddress
        conn.handler.write(.head(ex.upstreamHead))
        for part in ex.buffered {
            conn.handler.write(part)
            if case .end = part { ex.requestFullySent = true }
        }
        ex.buffered.removeAll()
        if !inDownstreamRead { conn.handler.flush() }
        if ex.requestEnded { requestSent(ex) }
        resumeDownstreamReads()
    }

    /// The whole request has gone to the upstream on this attempt: the request's timer starts
    /// (once), and this attempt's.
    func requestSent(_ ex: Exchange) {
        startRequestTimer(ex)
        let millis = ex.snapshot.config.perTryTimeoutMillis
        guard millis > 0, let context else { return }
        ex.tryStarted = true
        tryDeadline.set(runtime.timers.now(on: context.eventLoop) + .milliseconds(millis), loop: context.eventLoop) { [self] in self.tryTimerFired() }
    }

    func tryTimerFired() {
        guard let context else { return }
        guard tryDeadline.timerFired(loop: context.eventLoop, fire: { [self] in self.tryTimerFired() }) else { return }
        if let ex = exchange { tryTimedOut(ex) }
    }

    /// An attempt got no response head in time: its connection is dropped and the request goes
    /// out again if a retry is allowed and its body can be sent again; otherwise 504 UT.
    func tryTimedOut(_ ex: Exchange) {
        guard exchange === ex, ex.tryStarted, !ex.responseStarted, !ex.responseDone, ex.connection != nil else { return }
        ex.tryStarted = false
        let policy = ex.snapshot.retryPolicy
        recordOutcome(ex, .localFailure)
        abandonUpstream(ex)
        let retriable = policy.retriesTimeouts(direction: runtime.direction)
        if policy.resendsAfterTimeout(direction: runtime.direction, replayable: ex.replayable, requestBytes: ex.hop.requestBytes), startRetry(ex) {
            resend(ex)
            return
        }
        var flags = ["UT"]
        if retriable, let exhausted = policy.exhaustedFlag { flags.append(exhausted) }
        let retried = RetryPolicy.afterRetries(ex.hop.retries)
        localReply(ex, status: .gatewayTimeout, flags: flags, reason: Deadlines(ex.snapshot.config).reason(.perTry) + retried)
    }

    func startRequestTimer(_ ex: Exchange) {
        let millis = ex.snapshot.config.requestTimeoutMillis
        guard millis > 0, !ex.timerStarted, let context else { return }
        ex.timerStarted = true
        requestDeadline.set(runtime.timers.now(on: context.eventLoop) + .milliseconds(millis), loop: context.eventLoop) { [self] in self.requestTimerFired() }
    }

    func requestTimerFired() {
        guard let context else { return }
        guard requestDeadline.timerFired(loop: context.eventLoop, fire: { [self] in self.requestTimerFired() }) else { return }
        if let ex = exchange { requestTimedOut(ex) }
    }

    func requestTimedOut(_ ex: Exchange) {
        guard exchange === ex, !ex.responseDone else { return }
        let reason = Deadlines(ex.snapshot.config).reason(.request)
        if !ex.responseStarted {
            abandonUpstream(ex)
            localReply(ex, status: .gatewayTimeout, flags: ["UT"], reason: reason)
        } else {
            ex.hop.responseFlags.append("UT")
            ex.hop.failureReason = reason + " (response incomplete)"
            abandonUpstream(ex)
            finishRecord(ex)
            ex.responseDone = true
            context?.close(promise: nil)
        }
    }

    /// Drops the upstream side of an exchange that will not complete normally.
    func abandonUpstream(_ ex: Exchange) {
        if let id = ex.waiterID {
            ex.waiterID = nil
            ex.pool?.cancelWaiter(id)
        }
        ex.retryTask?.cancel()
        ex.retryTask = nil
        releaseRetrySlot(ex)
        if let conn = ex.connection {
            ex.connection = nil
            conn.handler.delegate = nil
            conn.channel.close(promise: nil)
        }
    }
}
