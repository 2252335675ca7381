/// Everything the tail sampler is told: the OpenTelemetry processor's settings (same names in
/// the policy file) plus one bound of our own on buffered spans.
public struct TailSamplingConfiguration: Sendable, Equatable {
    /// `decision_wait`: how long after a trace's first span it is decided, unless it is seen
    /// whole earlier (its root span is in and no child is missing). OpenTelemetry's default is
    /// 30 s; ours is 10 s because a sidecar flushes every second, so a trace is whole within a
    /// few, and every buffered second is memory.
    public var decisionWait: Duration = .seconds(10)
    /// `num_traces`: traces buffered at most. A new trace beyond it decides the oldest one early
    /// (counted), rather than dropping it undecided as OpenTelemetry does.
    public var numTraces: Int = 50_000
    /// Spans buffered at most over all traces (ours: `num_traces` alone does not bound memory
    /// when one trace grows without end). Beyond it the oldest traces are decided early.
    public var maxBufferedSpans: Int = 1_000_000
    /// `decision_cache.sampled_cache_size` and `non_sampled_cache_size`: decided trace ids
    /// remembered (LRU) so late spans follow the decision. OpenTelemetry's default is 0 (off);
    /// ours keeps 100,000 of each: about 15 MB by arithmetic (40-byte entries plus the
    /// dictionary index), not measured.
    public var sampledCacheSize: Int = 100_000
    public var nonSampledCacheSize: Int = 100_000
    /// `sample_on_first_match`: stop evaluating at the first policy that samples.
    public var sampleOnFirstMatch = false
    /// `decide_early_when_complete` (ours): decide as soon as the root span is in and no span is
    /// waiting for its parent or a CLIENT span for its server, instead of always waiting.
    public var decideWhenComplete = true
    public var policies: [SamplingPolicy] = []

    public init(policies: [SamplingPolicy] = []) {
        self.policies = policies
    }

    /// Keeps errors, traces slower than `slowerThanMs`, and `percent` of the rest: the policy
    /// `telemetry: mode: tail` and `meshtrace demo --tail` use.
    public static func errorsSlowAndPercent(slowerThanMs: Int64, percent: Double, decisionWait: Duration = .seconds(10)) -> Self {
        var configuration = Self(policies: [
            SamplingPolicy(name: "errors", rule: .statusCode([.error])),
            SamplingPolicy(name: "slow", rule: .latency(thresholdMs: slowerThanMs, upperThresholdMs: nil)),
            SamplingPolicy(name: "rest", rule: .probabilistic(samplingPercentage: percent, hashSalt: ProbabilisticThreshold.defaultSalt)),
        ])
        configuration.decisionWait = decisionWait
        return configuration
    }
}
