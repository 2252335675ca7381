import TraceModel

/// Tail-based sampling as a pure state machine: spans and clock ticks go in, decisions come
/// out. It owns no task, lock or clock; the time of every event is an argument, so tests move
/// time instead of waiting for it, and the collector's `TailSamplingService` drives it with a
/// real clock.
///
/// Spans are grouped by trace id. A trace is decided `decision_wait` after its first span, or
/// as soon as it is complete (`BufferedTrace`), or early when the buffer is full; the policies
/// are combined as OpenTelemetry's tail sampler combines them (a drop vetoes; else any sample
/// keeps; else not kept). Decisions are remembered (LRU) so later spans of the trace follow.
public struct TailSampler<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    public private(set) var configuration: TailSamplingConfiguration
    private var evaluators: [PolicyEvaluator<Instant>]
    private var traces: [TraceID: BufferedTrace<Instant>] = [:]
    /// Trace ids in order of first arrival; entries whose trace was decided are skipped.
    private var arrivals: [(id: TraceID, generation: UInt64)] = []
    private var arrivalsHead = 0
    private var nextGeneration: UInt64 = 0
    private var cache: DecisionCache
    public private(set) var bufferedSpans = 0

    public init(configuration: TailSamplingConfiguration) throws(PolicyError) {
        self.configuration = configuration
        self.evaluators = try configuration.policies.map { p throws(PolicyError) in try PolicyEvaluator(p) }
        self.cache = DecisionCache(sampledCapacity: configuration.sampledCacheSize, notSampledCapacity: configuration.nonSampledCacheSize)
    }

    public var bufferedTraces: Int { traces.count }

    /// When the oldest buffered trace is due, if any is buffered.
    public var nextDeadline: Instant? {
        var i = arrivalsHead
        while i < arrivals.count {
            if let trace = traces[arrivals[i].id], trace.generation == arrivals[i].generation {
                return trace.firstSeen.advanced(by: configuration.decisionWait)
            }
            i += 1
        }
        return nil
    }

    // MARK: Events

    /// Spans arrived (one request's worth).
    public mutating func receive(_ spans: [Span], now: Instant) -> TailSamplerOutput {
        var out = TailSamplerOutput()
        var order: [TraceID] = []
        var groups: [TraceID: [Span]] = [:]
        for span in spans {
            if groups[span.traceID] == nil { order.append(span.traceID) }
            groups[span.traceID, default: []].append(span)
        }
        var touched: [TraceID] = []
        for id in order {
            let group = groups[id] ?? []
            if var trace = traces.removeValue(forKey: id) {
                let added = group.reduce(0) { $0 + (trace.add($1) ? 1 : 0) }
                bufferedSpans += added
                out.duplicateSpans += group.count - added
                traces[id] = trace
                touched.append(id)
            } else if let count = cache.sampled.get(id) {
                out.late.append(LateSpans(traceID: id, spans: group, adjustedCount: count))
            } else if cache.notSampled.get(id) != nil {
                out.late.append(LateSpans(traceID: id, spans: group, adjustedCount: nil))
            } else {
                while traces.count >= max(1, configuration.numTraces), let oldest = oldestBuffered() {
                    out.append(decide(oldest, trigger: .overflow, now: now))
                }
                var trace = BufferedTrace<Instant>(firstSeen: now, generation: nextGeneration)
                arrivals.append((id, nextGeneration))
                nextGeneration &+= 1
                let added = group.reduce(0) { $0 + (trace.add($1) ? 1 : 0) }
                bufferedSpans += added
                out.duplicateSpans += group.count - added
                traces[id] = trace
                touched.append(id)
            }
        }
        if configuration.decideWhenComplete {
            for id in touched where traces[id]?.isComplete == true {
                out.append(decide(id, trigger: .complete, now: now))
            }
        }
        while bufferedSpans > configuration.maxBufferedSpans, let oldest = oldestBuffered() {
            out.append(decide(oldest, trigger: .overflow, now: now))
        }
        compactArrivals()
        return out
    }

    /// Time passed: decides every trace whose `decision_wait` is over.
    public mutating func tick(now: Instant) -> TailSamplerOutput {
        var out = TailSamplerOutput()
        while arrivalsHead < arrivals.count {
            let (id, generation) = arrivals[arrivalsHead]
            guard let trace = traces[id], trace.generation == generation else {
                arrivalsHead += 1
                continue
            }
            guard trace.firstSeen.advanced(by: configuration.decisionWait) <= now else { break }
            out.append(decide(id, trigger: .decisionWait, now: now))
        }
        compactArrivals()
        return out
    }

    /// New settings (a reloaded policy file). Policy state (rate-limit buckets) starts afresh;
    /// buffered traces stay and are decided by the new policies, at once if the new limits or
    /// `decision_wait` say so. Throws, changing nothing, when a policy cannot be built.
    public mutating func reconfigure(_ configuration: TailSamplingConfiguration, now: Instant) throws(PolicyError) -> TailSamplerOutput {
        let evaluators = try configuration.policies.map { p throws(PolicyError) in try PolicyEvaluator<Instant>(p) }
        self.configuration = configuration
        self.evaluators = evaluators
        cache.resize(sampledCapacity: configuration.sampledCacheSize, notSampledCapacity: configuration.nonSampledCacheSize)
        var out = TailSamplerOutput()
        while traces.count > max(1, configuration.numTraces) || bufferedSpans > configuration.maxBufferedSpans,
              let oldest = oldestBuffered()
        {
            out.append(decide(oldest, trigger: .overflow, now: now))
        }
        out.append(tick(now: now))
        return out
    }

    /// Decides every buffered trace now, with what has arrived (stopping, or turning off).
    public mutating func flush(now: Instant) -> TailSamplerOutput {
        var out = TailSamplerOutput()
        while let oldest = oldestBuffered() {
            out.append(decide(oldest, trigger: .flush, now: now))
        }
        compactArrivals()
        return out
    }

    // MARK: Deciding

    private func oldestBuffered() -> TraceID? {
        var i = arrivalsHead
        while i < arrivals.count {
            if let trace = traces[arrivals[i].id], trace.generation == arrivals[i].generation { return arrivals[i].id }
            i += 1
        }
        return nil
    }

    private mutating func compactArrivals() {
        while arrivalsHead < arrivals.count {
            let (id, generation) = arrivals[arrivalsHead]
            if let trace = traces[id], trace.generation == generation { break }
            arrivalsHead += 1
        }
        if arrivalsHead == arrivals.count {
            arrivals.removeAll(keepingCapacity: arrivals.count < 1 << 16)
            arrivalsHead = 0
        } else if arrivalsHead > 4096 && arrivalsHead * 2 > arrivals.count {
            arrivals.removeFirst(arrivalsHead)
            arrivalsHead = 0
        }
    }

    private mutating func decide(_ id: TraceID, trigger: DecisionTrigger, now: Instant) -> TailSamplerOutput {
        var out = TailSamplerOutput()
        guard let trace = traces.removeValue(forKey: id) else { return out }
        bufferedSpans -= trace.spans.count
        let decision = evaluate(id, spans: trace.spans, now: now, verdicts: &out.policyVerdicts)
        switch decision {
        case .sampled(let count, _): cache.sampled.put(id, count)
        case .notSampled, .dropped: cache.notSampled.put(id, true)
        }
        out.decided.append(DecidedTrace(traceID: id, spans: trace.spans, decision: decision, trigger: trigger))
        return out
    }

    /// OpenTelemetry's `makeDecision`: a drop (or inverted "not sampled") vetoes; else a sample
    /// keeps; else an inverted "sampled" keeps unless some policy said "not sampled".
    private mutating func evaluate(_ id: TraceID, spans: [Span], now: Instant, verdicts: inout [(policy: String, sampled: Bool)]) -> TraceDecision {
        var dropped: String?
        var invertNotSampled: String?
        var sampled: String?
        var invertSampled: String?
        var anyNotSampled = false
        var inclusions: [Inclusion] = []
        for i in evaluators.indices {
            let verdict = evaluators[i].evaluate(traceID: id, spans: spans, now: now)
            let name = evaluators[i].name
            verdicts.append((name, verdict.decision == .sampled || verdict.decision == .invertSampled))
            inclusions.append(verdict.inclusion)
            switch verdict.decision {
            case .dropped: dropped = dropped ?? name
            case .invertNotSampled: invertNotSampled = invertNotSampled ?? name
            case .sampled: sampled = sampled ?? name
            case .invertSampled: invertSampled = invertSampled ?? name
            case .notSampled: anyNotSampled = true
            }
            if dropped != nil { break }
            if configuration.sampleOnFirstMatch && sampled != nil { break }
        }
        if let dropped { return .dropped(policy: dropped) }
        if let invertNotSampled { return .dropped(policy: invertNotSampled) }
        let keeper = sampled ?? (anyNotSampled ? nil : invertSampled)
        guard let keeper else { return .notSampled }
        let probability = Inclusion.any(inclusions)
        return .sampled(adjustedCount: probability > 0 ? 1 / probability : 1, policy: keeper)
    }
}
