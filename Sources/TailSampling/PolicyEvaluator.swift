import TraceModel

/// A policy ready to evaluate: regexes compiled, thresholds computed, and the state the
/// rate-limited policies carry from one trace to the next (their buckets and per-second
/// counters). Evaluation reads the trace's spans and the time it is given, nothing else.
struct PolicyEvaluator<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    let name: String
    private var node: Node

    private indirect enum Node: Sendable {
        case alwaysSample
        case latency(thresholdMs: Int64, upperThresholdMs: Int64?)
        case numeric(key: String, min: Int64, max: Int64, invert: Bool)
        case string(key: String, matcher: StringMatcher, invert: Bool)
        case status(Set<SamplingPolicy.StatusCodeName>)
        case probabilistic(threshold: UInt64, salt: String, ratio: Double)
        case rateLimiting(TokenBucket<Instant>)
        case and([PolicyEvaluator])
        case drop([PolicyEvaluator])
        case composite(CompositeState)
    }

    private struct CompositeState: Sendable {
        var subPolicies: [PolicyEvaluator]
        var allocated: [Int64]
        var sampledThisSecond: [Int64]
        var maxTotal: Int64
        var windowStart: Instant?
    }

    init(_ policy: SamplingPolicy) throws(PolicyError) {
        name = policy.name
        switch policy.rule {
        case .alwaysSample:
            node = .alwaysSample
        case .latency(let threshold, let upper):
            node = .latency(thresholdMs: threshold, upperThresholdMs: upper.flatMap { $0 == 0 ? nil : $0 })
        case .numericAttribute(let key, let minValue, let maxValue, let invert):
            node = .numeric(key: key, min: minValue ?? .min, max: maxValue ?? .max, invert: invert)
        case .stringAttribute(let key, let values, let regex, let invert):
            node = .string(key: key, matcher: try StringMatcher(values: values, regex: regex, policy: policy.name), invert: invert)
        case .statusCode(let codes):
            node = .status(Set(codes))
        case .probabilistic(let percentage, let salt):
            let salt = salt.isEmpty ? ProbabilisticThreshold.defaultSalt : salt
            node = .probabilistic(threshold: ProbabilisticThreshold.threshold(percentage: percentage), salt: salt, ratio: min(1, max(0, percentage / 100)))
        case .rateLimiting(let spansPerSecond):
            node = .rateLimiting(TokenBucket(rate: Double(spansPerSecond), burst: Double(spansPerSecond) * 2))
        case .and(let subs):
            node = .and(try subs.map { p throws(PolicyError) in try PolicyEvaluator(p) })
        case .drop(let subs):
            node = .drop(try subs.map { p throws(PolicyError) in try PolicyEvaluator(p) })
        case .composite(let composite):
            var ordered: [PolicyEvaluator] = []
            var allocated: [Int64] = []
            let order = composite.policyOrder.isEmpty ? composite.subPolicies.map(\.name) : composite.policyOrder
            let equalShare = composite.subPolicies.isEmpty ? 0 : composite.maxTotalSpansPerSecond / Int64(composite.subPolicies.count)
            for name in order {
                guard let sub = composite.subPolicies.first(where: { $0.name == name }) else {
                    throw PolicyError(policy: policy.name, message: "policy_order names '\(name)', which is not one of its composite_sub_policy")
                }
                ordered.append(try PolicyEvaluator(sub))
                switch composite.rateAllocation[name] {
                case nil: allocated.append(0)
                case let percent? where percent > 0: allocated.append(composite.maxTotalSpansPerSecond * percent / 100)
                default: allocated.append(equalShare)
                }
            }
            node = .composite(CompositeState(
                subPolicies: ordered, allocated: allocated, sampledThisSecond: Array(repeating: 0, count: ordered.count),
                maxTotal: composite.maxTotalSpansPerSecond, windowStart: nil))
        }
    }

    mutating func evaluate(traceID: TraceID, spans: [Span], now: Instant) -> PolicyVerdict {
        switch node {
        case .alwaysSample:
            return .matched(true)
        case .latency(let threshold, let upper):
            guard let first = spans.map(\.startTimeNanos).min(), let last = spans.map(\.endTimeNanos).max() else { return .matched(false) }
            let ms = Int64((last >= first ? last - first : 0) / 1_000_000)
            guard let upper else { return .matched(ms >= threshold) }
            return .matched(threshold < ms && ms <= upper)
        case .numeric(let key, let min, let max, let invert):
            return Self.attributeVerdict(spans: spans, key: key, invert: invert) { value in
                guard let number = Self.integer(value) else { return false }
                return min <= number && number <= max
            }
        case .string(let key, let matcher, let invert):
            return Self.attributeVerdict(spans: spans, key: key, invert: invert) { value in
                guard case .string(let text) = value, !text.isEmpty else { return false }
                return matcher.matches(text)
            }
        case .status(let codes):
            return .matched(spans.contains { codes.contains(Self.statusCode(of: $0)) })
        case .probabilistic(let threshold, let salt, let ratio):
            let sampled = ProbabilisticThreshold.samples(traceID: traceID, salt: salt, threshold: threshold)
            return PolicyVerdict(decision: sampled ? .sampled : .notSampled, inclusion: Inclusion(probability: ratio, salt: salt))
        case .rateLimiting(var bucket):
            let allowed = bucket.allow(spans.count, now: now)
            node = .rateLimiting(bucket)
            // How likely a trace is to find room depends on the traffic, not on the trace:
            // a kept one counts as itself (adjusted count 1).
            return .matched(allowed)
        case .and(var subs):
            var inclusion = Inclusion.certain
            var verdict = PolicyVerdict.matched(true)
            for i in subs.indices {
                let sub = subs[i].evaluate(traceID: traceID, spans: spans, now: now)
                inclusion = inclusion.and(sub.inclusion)
                if sub.decision == .notSampled || sub.decision == .invertNotSampled || sub.decision == .dropped {
                    verdict = PolicyVerdict(decision: .notSampled, inclusion: inclusion)
                    break
                }
                verdict.inclusion = inclusion
            }
            node = .and(subs)
            return verdict
        case .drop(var subs):
            var all = true
            for i in subs.indices {
                let sub = subs[i].evaluate(traceID: traceID, spans: spans, now: now)
                if sub.decision != .sampled && sub.decision != .invertSampled {
                    all = false
                    break
                }
            }
            node = .drop(subs)
            return PolicyVerdict(decision: all ? .dropped : .notSampled, inclusion: .never)
        case .composite(var state):
            let verdict = Self.evaluateComposite(&state, traceID: traceID, spans: spans, now: now)
            node = .composite(state)
            return verdict
        }
    }

    private static func evaluateComposite(_ state: inout CompositeState, traceID: TraceID, spans: [Span], now: Instant) -> PolicyVerdict {
        // Budgets are per second: a new second starts every count over.
        if state.windowStart.map({ $0.duration(to: now) >= .seconds(1) }) ?? true {
            state.windowStart = now
            for i in state.sampledThisSecond.indices { state.sampledThisSecond[i] = 0 }
        }
        for i in state.subPolicies.indices {
            let sub = state.subPolicies[i].evaluate(traceID: traceID, spans: spans, now: now)
            guard sub.decision == .sampled || sub.decision == .invertSampled else { continue }
            // The first sub-policy that wants the trace decides, within its share of the budget.
            let ifSampled = state.sampledThisSecond[i] + Int64(spans.count)
            guard ifSampled <= state.allocated[i], ifSampled <= state.maxTotal else {
                return PolicyVerdict(decision: .notSampled, inclusion: .never)
            }
            state.sampledThisSecond[i] = ifSampled
            return PolicyVerdict(decision: .sampled, inclusion: sub.inclusion)
        }
        return PolicyVerdict(decision: .notSampled, inclusion: .never)
    }

    /// OpenTelemetry's attribute rules: resource attributes, then span attributes, any span.
    /// Inverted, a match anywhere is an inverted "not sampled" and no match an inverted "sampled".
    private static func attributeVerdict(spans: [Span], key: String, invert: Bool, matches: (AttributeValue) -> Bool) -> PolicyVerdict {
        var found = false
        search: for span in spans {
            for attribute in span.resource where attribute.key == key && matches(attribute.value) {
                found = true
                break search
            }
            if let value = span.attribute(key), matches(value) {
                found = true
                break search
            }
        }
        if invert {
            return PolicyVerdict(decision: found ? .invertNotSampled : .invertSampled, inclusion: found ? .never : .certain)
        }
        return .matched(found)
    }

    /// Whole numbers: integers, doubles (truncated), and strings that hold one. Zipkin carries
    /// every tag as a string, so `http.status_code` from a Zipkin-reporting sidecar is "503";
    /// OpenTelemetry's policy would not see it as a number.
    static func integer(_ value: AttributeValue) -> Int64? {
        switch value {
        case .int(let i): return i
        case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? Int64(d) : nil
        case .string(let s): return Int64(s)
        default: return nil
        }
    }

    /// A Zipkin `error` tag is ERROR, as OpenTelemetry's Zipkin receiver maps it.
    static func statusCode(of span: Span) -> SamplingPolicy.StatusCodeName {
        if span.isError { return .error }
        return span.status.code == .ok ? .ok : .unset
    }
}

/// A policy that cannot be built (a regex that does not compile, a `policy_order` naming
/// nothing); the policy file reader reports these with the line.
public struct PolicyError: Error, Sendable, Equatable, CustomStringConvertible {
    public var policy: String
    public var message: String

    public init(policy: String, message: String) {
        self.policy = policy
        self.message = message
    }

    public var description: String { "policy '\(policy)': \(message)" }
}
