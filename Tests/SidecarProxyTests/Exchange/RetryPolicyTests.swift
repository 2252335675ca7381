import Testing
@testable import SidecarProxy

struct RetryPolicyTests {
    let policy = RetryPolicy(maxRetries: 2, retryOnStatus: [503], budgetPercent: 20, minConcurrency: 3)

    @Test func retriesPerRequestStopAtTheLimit() {
        #expect(policy.allowsAnother(after: 0) && policy.allowsAnother(after: 1))
        #expect(!policy.allowsAnother(after: 2))
        #expect(!RetryPolicy(maxRetries: 0, retryOnStatus: [], budgetPercent: 20, minConcurrency: 3).allowsAnother(after: 0))
        #expect(policy.exhaustedFlag == "URX")
        #expect(RetryPolicy(maxRetries: 0, retryOnStatus: [503], budgetPercent: 20, minConcurrency: 3).exhaustedFlag == nil)
    }

    /// Istio's inbound policy has no status retries; outbound and gateway retry the listed ones.
    @Test func statusRetriesAreOutboundAndGatewayOnly() {
        #expect(policy.retries(status: 503, direction: .outbound) && policy.retries(status: 503, direction: .gateway))
        #expect(!policy.retries(status: 503, direction: .inbound))
        #expect(!policy.retries(status: 502, direction: .outbound))
        #expect(policy.keepsBodies(direction: .outbound) && !policy.keepsBodies(direction: .inbound))
        #expect(!RetryPolicy(maxRetries: 2, retryOnStatus: [], budgetPercent: 20, minConcurrency: 3).keepsBodies(direction: .outbound))
    }

    /// Envoy's back-off: retry n waits between half and one and a half times 25 ms × 2^(n-1),
    /// the doubling stopping after 6.
    @Test func backoffDoublesWithJitter() {
        var rng = FastRandom(seed: 1)
        for retry in 1...9 {
            let base = Int64(25) << Int64(min(retry - 1, 6))
            var seen = Set<Int64>()
            for _ in 0..<200 {
                let ms = RetryPolicy.backoff(retry: retry, random: &rng).nanoseconds / 1_000_000
                #expect(ms >= base / 2 && ms < base / 2 + base, "retry \(retry): \(ms) ms")
                seen.insert(ms)
            }
            #expect(seen.count > 5, "jittered")
        }
    }

    @Test func theConfigurationGivesThePolicy() {
        var config = SidecarConfiguration()
        config.maxRetries = 4
        config.retryOnStatus = [502, 503]
        config.retryBudgetPercent = 50
        config.minRetryConcurrency = 1
        #expect(RetryPolicy(config) == RetryPolicy(maxRetries: 4, retryOnStatus: [502, 503], budgetPercent: 50, minConcurrency: 1))
        #expect(RetryPolicy.afterRetries(0) == "" && RetryPolicy.afterRetries(1) == " after 1 retry" && RetryPolicy.afterRetries(3) == " after 3 retries")
    }
}
