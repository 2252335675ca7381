/// One tail-sampling policy, with the OpenTelemetry Collector `tail_sampling` processor's
/// types, field names and meaning (`processor/tailsamplingprocessor/README.md`), so a policy
/// written for it reads the same here.
public struct SamplingPolicy: Sendable, Equatable {
    /// Names the policy in metrics (`policy` label) and in `composite`'s `policy_order`.
    public var name: String
    public var rule: Rule

    public init(name: String, rule: Rule) {
        self.name = name
        self.rule = rule
    }

    public indirect enum Rule: Sendable, Equatable {
        /// `always_sample`.
        case alwaysSample
        /// `latency`: the trace's duration (earliest start to latest end) is at least
        /// `threshold_ms`, or, with `upper_threshold_ms`, above `threshold_ms` and at most that.
        case latency(thresholdMs: Int64, upperThresholdMs: Int64?)
        /// `numeric_attribute`: a span or resource attribute `key` in `[min_value, max_value]`
        /// (either bound may be left out).
        case numericAttribute(key: String, minValue: Int64?, maxValue: Int64?, invertMatch: Bool)
        /// `string_attribute`: a span or resource attribute `key` equal to one of `values`, or,
        /// with `enabled_regex_matching`, containing a match of one of them.
        case stringAttribute(key: String, values: [String], regex: Bool, invertMatch: Bool)
        /// `status_code`: a span with one of these statuses.
        case statusCode([StatusCodeName])
        /// `probabilistic`: FNV-1a of `hash_salt` + the trace id under a threshold, so every
        /// collector with the same salt makes the same choice.
        case probabilistic(samplingPercentage: Double, hashSalt: String)
        /// `rate_limiting`: a token bucket of `spans_per_second`, burst twice that; a trace
        /// passes when all its spans fit.
        case rateLimiting(spansPerSecond: Int64)
        /// `and`: every sub-policy samples.
        case and([SamplingPolicy])
        /// `drop`: when every sub-policy samples, the trace is dropped whatever else matched.
        case drop([SamplingPolicy])
        /// `composite`: sub-policies in order, each within its share of a spans-per-second budget.
        case composite(Composite)
    }

    public enum StatusCodeName: String, Sendable, Equatable, CaseIterable {
        case ok = "OK"
        case error = "ERROR"
        case unset = "UNSET"
    }

    public struct Composite: Sendable, Equatable {
        public var maxTotalSpansPerSecond: Int64
        /// Sub-policy names in evaluation order (every sub-policy, each once).
        public var policyOrder: [String]
        public var subPolicies: [SamplingPolicy]
        /// Percent of `maxTotalSpansPerSecond` per sub-policy name. As in the OpenTelemetry code,
        /// a sub-policy with no entry gets no budget, and an entry of 0 gets an equal share.
        public var rateAllocation: [String: Int64]

        public init(maxTotalSpansPerSecond: Int64, policyOrder: [String], subPolicies: [SamplingPolicy], rateAllocation: [String: Int64]) {
            self.maxTotalSpansPerSecond = maxTotalSpansPerSecond
            self.policyOrder = policyOrder
            self.subPolicies = subPolicies
            self.rateAllocation = rateAllocation
        }
    }

    /// The policy type as written in the file (`status_code`, `and`, …).
    public var typeName: String {
        switch rule {
        case .alwaysSample: return "always_sample"
        case .latency: return "latency"
        case .numericAttribute: return "numeric_attribute"
        case .stringAttribute: return "string_attribute"
        case .statusCode: return "status_code"
        case .probabilistic: return "probabilistic"
        case .rateLimiting: return "rate_limiting"
        case .and: return "and"
        case .drop: return "drop"
        case .composite: return "composite"
        }
    }
}
