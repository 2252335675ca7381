/// One policy's answer for one trace, in OpenTelemetry's terms, and how likely it was.
struct PolicyVerdict: Sendable, Equatable {
    enum Decision: Sendable, Equatable {
        case sampled, notSampled
        /// A `drop` policy matched: not sampled, whatever else said.
        case dropped
        /// `invert_match` answers (deprecated upstream, still honoured): an inverted "not
        /// sampled" vetoes like `drop`; an inverted "sampled" counts unless another policy
        /// said "not sampled".
        case invertSampled, invertNotSampled
    }

    var decision: Decision
    /// The chance, over trace ids, that this policy samples a trace with this content: 1 or 0
    /// for rules on what the trace holds, the percentage for `probabilistic`. Kept traces carry
    /// 1 / (their chance of being kept) as their adjusted count.
    var inclusion: Inclusion

    static func matched(_ yes: Bool) -> PolicyVerdict {
        PolicyVerdict(decision: yes ? .sampled : .notSampled, inclusion: yes ? .certain : .never)
    }
}

/// Probability that a policy keeps a trace of this content. `salt` is set when it comes from
/// one salt's hash alone: policies hashing with the same salt agree (a 5% pass implies a 10%
/// pass), so their chances combine by maximum, not as independent draws.
struct Inclusion: Sendable, Equatable {
    var probability: Double
    var salt: String?

    static let certain = Inclusion(probability: 1, salt: nil)
    static let never = Inclusion(probability: 0, salt: nil)

    /// Both must keep the trace (`and`).
    func and(_ other: Inclusion) -> Inclusion {
        if probability == 0 || other.probability == 0 { return .never }
        if probability == 1 { return other }
        if other.probability == 1 { return self }
        if let salt, salt == other.salt { return Inclusion(probability: min(probability, other.probability), salt: salt) }
        return Inclusion(probability: probability * other.probability, salt: nil)
    }

    /// Any of them keeps the trace (the top-level policy list).
    static func any(_ inclusions: [Inclusion]) -> Double {
        // One chance alone is returned as it is: 1 - (1 - 0.05) is 0.05000000000000004, and a
        // kept span's adjusted count would read 19.999999999999982 instead of 20.
        let chances = inclusions.filter { $0.probability > 0 }
        if chances.count == 1, let only = chances.first { return min(1, only.probability) }
        var bySalt: [String: Double] = [:]
        var missAll = 1.0
        for inclusion in inclusions where inclusion.probability > 0 {
            if inclusion.probability >= 1 { return 1 }
            if let salt = inclusion.salt {
                bySalt[salt] = max(bySalt[salt] ?? 0, inclusion.probability)
            } else {
                missAll *= 1 - inclusion.probability
            }
        }
        for p in bySalt.values { missAll *= 1 - p }
        return 1 - missAll
    }
}
