import Logging
import ServiceLifecycle
import Synchronization
import TailSampling
import TraceModel
import TraceStorage

/// The tail-sampling stage between the receivers and the ingest queue, a ServiceLifecycle
/// `Service` generic over its `Clock` (tests run it on `ManualClock`): it drives the pure
/// `TailSampler` with the clock's time, feeds every decided trace to the RED aggregate and span
/// metrics, and hands the kept ones to the store.
///
/// What an acknowledgement means with tail sampling on (README "Tail-based sampling"):
/// - spans of a trace already kept, or kept by the request itself (the trace became complete),
///   are answered after they are committed, as without sampling;
/// - spans of a trace still waiting for its decision are answered once they are in memory,
///   as OpenTelemetry's tail sampler does: a `kill -9` loses them (at most `decision_wait` of
///   traffic); SIGTERM decides every waiting trace with what arrived and writes the kept ones
///   before the store closes (unless `drop_pending_traces_on_shutdown`);
/// - spans of a trace already dropped are answered at once.
///
/// With no policy it passes spans straight to the queue, so it can be switched on and off live.
final class TailSamplingService<C: Clock>: Service, Sendable where C.Duration == Duration {
    private struct State: Sendable {
        var sampler: TailSampler<C.Instant>?
        var routing: TraceRouting?
        var dropPendingOnShutdown = false
        /// Kept spans decided outside a request (timer, overflow, reload), waiting for the writer.
        var writes: [[Span]] = []
        var writeSpans = 0
        var writerWaiter: CheckedContinuation<Void, Never>?
        var stopping = false
    }

    let clock: C
    let queue: IngestQueue
    let metrics: TailSamplingMetrics
    let aggregate: REDAggregate
    let spanMetrics: SpanMetrics
    let logger: Logger
    /// Kept spans waiting for the writer beyond which ingest answers "full, retry".
    let maxPendingWriteSpans: Int
    /// How often the stage wakes with nothing due (and checks the policy file).
    let pollInterval: Duration
    private let watcher: PolicyFileWatcher?
    private let state: Mutex<State>

    init(
        clock: C, policy: SamplingPolicyFile?, policyPath: String? = nil, queue: IngestQueue, metrics: TailSamplingMetrics,
        aggregate: REDAggregate, spanMetrics: SpanMetrics, maxPendingWriteSpans: Int = 200_000, pollInterval: Duration = .milliseconds(250),
        logger: Logger
    ) throws(PolicyError) {
        self.clock = clock
        self.queue = queue
        self.metrics = metrics
        self.aggregate = aggregate
        self.spanMetrics = spanMetrics
        self.maxPendingWriteSpans = maxPendingWriteSpans
        self.pollInterval = pollInterval
        self.logger = logger
        self.watcher = policyPath.map { PolicyFileWatcher(path: $0) }
        var initial = State()
        if let policy {
            initial.sampler = try TailSampler(configuration: policy.configuration)
            initial.routing = policy.routing
            initial.dropPendingOnShutdown = policy.dropPendingOnShutdown
            aggregate.activate()
        }
        state = Mutex(initial)
    }

    var isEnabled: Bool { state.withLock { $0.sampler != nil } }
    /// How traces are shared with other collectors, from the same policy file.
    var routing: TraceRouting? { state.withLock { $0.routing } }

    /// A new policy, or nil to turn tail sampling off (every waiting trace is decided now).
    /// Throws, changing nothing, when a policy cannot be built.
    func setPolicy(_ policy: SamplingPolicyFile?) throws(PolicyError) {
        let now = clock.now
        let result = state.withLock { s -> Result<TailSamplerOutput, PolicyError> in
            guard let policy else {
                let out = s.sampler?.flush(now: now) ?? TailSamplerOutput()
                s.sampler = nil
                s.routing = nil
                return .success(out)
            }
            let output: TailSamplerOutput
            do throws(PolicyError) {
                if s.sampler == nil {
                    s.sampler = try TailSampler(configuration: policy.configuration)
                    output = TailSamplerOutput()
                } else {
                    output = try s.sampler?.reconfigure(policy.configuration, now: now) ?? TailSamplerOutput()
                }
            } catch {
                return .failure(error)
            }
            s.routing = policy.routing
            s.dropPendingOnShutdown = policy.dropPendingOnShutdown
            return .success(output)
        }
        let output = try result.get()
        if policy != nil { aggregate.activate() }
        enqueue(account(output))
        if policy == nil { aggregate.deactivate() }
    }

    // MARK: Ingest

    /// Spans from a receiver; see the type's comment for what returning means.
    func submit(_ spans: [Span]) async throws(IngestError) {
        let now = clock.now
        let entry = state.withLock { s -> SubmitEntry in
            guard s.sampler != nil else { return .passThrough }
            if s.stopping { return .refused(.shuttingDown) }
            if s.writeSpans > maxPendingWriteSpans { return .refused(.queueFull) }
            guard let out = s.sampler?.receive(spans, now: now) else { return .passThrough }
            return .sampled(out)
        }
        switch entry {
        case .passThrough:
            try await queue.submit(spans)
        case .refused(let error):
            throw error
        case .sampled(let output):
            // Kept by this request's own spans (complete) or kept before (late): committed
            // before the answer. Traces that overflow decided belong to earlier requests.
            var own: [Span] = []
            var others: [[Span]] = []
            for kept in account(output) {
                if kept.ownRequest { own += kept.spans } else { others.append(kept.spans) }
            }
            enqueue(others.map { KeptSpans(spans: $0, ownRequest: false) })
            guard !own.isEmpty else { return }
            do {
                try await queue.submit(own)
            } catch {
                // Decided and out of the buffer: the writer keeps trying, the sender need not.
                logger.debug("kept spans go through the writer", metadata: ["spans": "\(own.count)", "reason": "\(error)"])
                enqueue([KeptSpans(spans: own, ownRequest: false)])
            }
        }
    }

    private enum SubmitEntry {
        case passThrough
        case refused(IngestError)
        case sampled(TailSamplerOutput)
    }

    private enum WriterStep {
        case write([Span])
        case wait
        case done
    }

    struct KeptSpans {
        var spans: [Span]
        var ownRequest: Bool
    }

    /// Metrics, RED aggregate and span metrics for everything decided; returns the kept spans,
    /// each carrying its adjusted count.
    private func account(_ output: TailSamplerOutput) -> [KeptSpans] {
        if output.duplicateSpans > 0 { metrics.duplicateSpans.increment(by: Int64(output.duplicateSpans)) }
        for verdict in output.policyVerdicts { metrics.policy(verdict.policy, sampled: verdict.sampled) }
        var kept: [KeptSpans] = []
        for trace in output.decided {
            metrics.decided(trace.decision, trigger: trace.trigger)
            aggregate.record(trace.spans)
            spanMetrics.record(trace.spans)
            if case .sampled(let count, _) = trace.decision {
                kept.append(KeptSpans(spans: Self.adjusted(trace.spans, count: count), ownRequest: trace.trigger == .complete))
            }
        }
        for late in output.late {
            metrics.late(late.spans.count, sampled: late.adjustedCount != nil)
            aggregate.record(late.spans)
            spanMetrics.record(late.spans)
            if let count = late.adjustedCount { kept.append(KeptSpans(spans: Self.adjusted(late.spans, count: count), ownRequest: true)) }
        }
        return kept
    }

    /// Each kept span says how many requests it stands for: the sidecar's head sampling
    /// (`1 / sampling.rate`) times the tail policy's (`1 / chance of keeping`).
    static func adjusted(_ spans: [Span], count: Double) -> [Span] {
        spans.map { span in
            var span = span
            let total = ServiceGraph.weight(of: span) * count
            span.attributes.removeAll { $0.key == ServiceGraph.adjustedCountKey }
            span.attributes.append(Attribute(ServiceGraph.adjustedCountKey, .double(total)))
            return span
        }
    }

    private func enqueue(_ kept: [KeptSpans]) {
        let batches = kept.map(\.spans).filter { !$0.isEmpty }
        guard !batches.isEmpty else { return }
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.writes += batches
            s.writeSpans += batches.reduce(0) { $0 + $1.count }
            defer { s.writerWaiter = nil }
            return s.writerWaiter
        }
        waiter?.resume()
    }

    // MARK: Running

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.writer() }
            try? await cancelWhenGracefulShutdown { try await self.ticker() }
            // Stopping: decide what waits (or forget it, if told to), write the kept traces.
            let (output, drop) = state.withLock { s -> (TailSamplerOutput, Bool) in
                let out = s.dropPendingOnShutdown ? TailSamplerOutput() : (s.sampler?.flush(now: clock.now) ?? TailSamplerOutput())
                return (out, s.dropPendingOnShutdown)
            }
            if drop, let pending = state.withLock({ $0.sampler?.bufferedTraces }), pending > 0 {
                logger.notice("dropping traces still waiting for a decision", metadata: ["traces": "\(pending)"])
            }
            enqueue(account(output))
            let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
                s.stopping = true
                defer { s.writerWaiter = nil }
                return s.writerWaiter
            }
            waiter?.resume()
            await group.waitForAll()
        }
        logger.debug("tail sampling stopped")
    }

    /// Decides traces as their `decision_wait` ends, and reloads the policy file when it changes.
    private func ticker() async throws {
        var nextReload = clock.now.advanced(by: .seconds(1))
        while true {
            let now = clock.now
            let (output, deadline, traces, spans) = state.withLock { s in
                (s.sampler?.tick(now: now) ?? TailSamplerOutput(), s.sampler?.nextDeadline, s.sampler?.bufferedTraces ?? 0, s.sampler?.bufferedSpans ?? 0)
            }
            enqueue(account(output))
            metrics.bufferedTraces.record(traces)
            metrics.bufferedSpans.record(spans)
            if let watcher, now >= nextReload {
                nextReload = now.advanced(by: .seconds(1))
                reload(watcher)
            }
            let poll = now.advanced(by: pollInterval)
            try await clock.sleep(until: deadline.map { min($0, poll) } ?? poll, tolerance: nil)
        }
    }

    private func reload(_ watcher: PolicyFileWatcher) {
        switch watcher.changed() {
        case nil: return
        case .success(let policy)?:
            do {
                try setPolicy(policy)
                metrics.reloadsOK.increment()
                logger.notice("sampling policy reloaded", metadata: ["file": "\(watcher.path)", "policies": "\(policy.configuration.policies.count)"])
            } catch {
                metrics.reloadsFailed.increment()
                logger.error("sampling policy not reloaded; the previous one stays", metadata: ["error": "\(error)"])
            }
        case .failure(let error)?:
            metrics.reloadsFailed.increment()
            logger.error("sampling policy not reloaded; the previous one stays", metadata: ["error": "\(error)"])
        }
    }

    /// Writes kept traces decided outside a request; a full queue is waited out, a failing
    /// store retried for a while, then the spans are counted as lost.
    private func writer() async {
        while true {
            let next = state.withLock { s -> WriterStep in
                if !s.writes.isEmpty { return .write(s.writes.removeFirst()) }
                return s.stopping ? .done : .wait
            }
            switch next {
            case .done:
                return
            case .wait:
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { s -> Bool in
                        if !s.writes.isEmpty || s.stopping { return true }
                        s.writerWaiter = c
                        return false
                    }
                    if resumeNow { c.resume() }
                }
            case .write(let spans):
                await write(spans)
                state.withLock { $0.writeSpans -= spans.count }
            }
        }
    }

    private func write(_ spans: [Span]) async {
        var storeFailures = 0
        while true {
            do {
                try await queue.submit(spans)
                return
            } catch {
                switch error {
                case .queueFull:
                    break
                case .storeFailed(let message):
                    storeFailures += 1
                    guard storeFailures < 30 else {
                        logger.error("kept spans lost: the store keeps failing", metadata: ["spans": "\(spans.count)", "error": "\(message)"])
                        metrics.writeFailedSpans.increment(by: Int64(spans.count))
                        return
                    }
                case .shuttingDown:
                    logger.error("kept spans lost: the store closed first", metadata: ["spans": "\(spans.count)"])
                    metrics.writeFailedSpans.increment(by: Int64(spans.count))
                    return
                }
            }
            // Backing off on the real passage of time between attempts, not waiting for a task.
            do {
                try await Task.sleep(for: storeFailures > 0 ? .seconds(1) : .milliseconds(50))
            } catch {
                metrics.writeFailedSpans.increment(by: Int64(spans.count))
                return
            }
        }
    }
}
