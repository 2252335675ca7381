/// How requests are spread over a service's endpoints.
public enum LoadBalancerPolicy: String, Sendable, Hashable, CaseIterable {
    /// Envoy's LEAST_REQUEST with its default `choice_count` of 2 (Istio's default balancer):
    /// two endpoints drawn at random, the one with fewer active requests wins (the first drawn
    /// on a tie). O(1), and it keeps a slow replica from piling up requests.
    case leastRequest = "least-request"
    /// Envoy's ROUND_ROBIN: each endpoint in turn.
    case roundRobin = "round-robin"
}

/// Picks one endpoint among candidates. A pure value: the caller passes the candidates (already
/// without ejected or excluded endpoints), every endpoint's active request count, and the random
/// source, so tests are deterministic.
public struct LoadBalancer: Sendable {
    public let policy: LoadBalancerPolicy
    /// Envoy's `choice_count`: how many random endpoints least-request compares.
    public let choiceCount: Int
    private var nextIndex = 0

    public init(policy: LoadBalancerPolicy, choiceCount: Int = 2) {
        self.policy = policy
        self.choiceCount = max(1, choiceCount)
    }

    /// - Parameters:
    ///   - candidates: endpoint indices that may be picked (none: nil).
    ///   - active: active requests by endpoint index (indices in `candidates` must be valid).
    public mutating func pick<R: RandomNumberGenerator>(from candidates: [Int], active: [Int], random: inout R) -> Int? {
        guard !candidates.isEmpty else { return nil }
        if candidates.count == 1 { return candidates[0] }
        switch policy {
        case .roundRobin:
            let chosen = candidates[nextIndex % candidates.count]
            nextIndex = (nextIndex &+ 1) & Int.max
            return chosen
        case .leastRequest:
            // As Envoy's unweighted pick: `choiceCount` draws with replacement, the first drawn
            // kept unless a later one has strictly fewer active requests.
            var best = candidates[Int(random.next(upperBound: UInt64(candidates.count)))]
            for _ in 1..<choiceCount {
                let other = candidates[Int(random.next(upperBound: UInt64(candidates.count)))]
                if active[other] < active[best] { best = other }
            }
            return best
        }
    }
}
