import TraceModel

/// Why a trace was decided when it was.
public enum DecisionTrigger: String, Sendable, CaseIterable {
    /// `decision_wait` passed since its first span.
    case decisionWait = "decision_wait"
    /// Its root span was in and nothing it called was missing.
    case complete
    /// The buffer was full (`num_traces` or `max_buffered_spans`): the oldest trace was decided
    /// early, with what had arrived.
    case overflow
    /// The collector is stopping, or tail sampling was turned off: decided with what arrived.
    case flush
}

/// The outcome for one trace.
public enum TraceDecision: Sendable, Equatable {
    /// Kept: store the spans, each carrying `adjustedCount` (how many traces like it this one
    /// stands for). `policy` is the first policy that sampled it.
    case sampled(adjustedCount: Double, policy: String)
    case notSampled
    /// A `drop` policy (or an inverted match) vetoed it; `policy` names which.
    case dropped(policy: String)

    public var isSampled: Bool {
        if case .sampled = self { return true }
        return false
    }

    public var label: String {
        switch self {
        case .sampled: return "sampled"
        case .notSampled: return "not_sampled"
        case .dropped: return "dropped"
        }
    }
}

/// A trace whose decision was just made, with every span it had: the kept ones go to the
/// store, and all of them (kept or not) feed the RED metrics first.
public struct DecidedTrace: Sendable {
    public var traceID: TraceID
    public var spans: [Span]
    public var decision: TraceDecision
    public var trigger: DecisionTrigger
}

/// Spans of a trace decided earlier (they follow the decision).
public struct LateSpans: Sendable {
    public var traceID: TraceID
    public var spans: [Span]
    /// Nil when the trace was not kept.
    public var adjustedCount: Double?
}

/// What one event produced.
public struct TailSamplerOutput: Sendable {
    public var decided: [DecidedTrace] = []
    public var late: [LateSpans] = []
    /// How each policy answered, for the per-policy counters: (policy, sampled?).
    public var policyVerdicts: [(policy: String, sampled: Bool)] = []
    /// Spans dropped as exact repeats of buffered ones (a retried batch).
    public var duplicateSpans = 0

    public init() {}

    public var isEmpty: Bool { decided.isEmpty && late.isEmpty }

    mutating func append(_ other: TailSamplerOutput) {
        decided += other.decided
        late += other.late
        policyVerdicts += other.policyVerdicts
        duplicateSpans += other.duplicateSpans
    }
}
