/// `rate_limiting`'s bucket, as golang.org/x/time/rate's `Limiter.AllowN`: tokens refill
/// continuously at `rate` per second up to `burst`; a request for `n` passes, and takes them,
/// only when `n` are there. It starts full. Time comes from the caller (the sampler's clock).
struct TokenBucket<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    let rate: Double
    let burst: Double
    private var tokens: Double
    private var last: Instant?

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
        self.tokens = burst
    }

    mutating func allow(_ n: Int, now: Instant) -> Bool {
        if let last, now > last {
            let elapsed = last.duration(to: now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            tokens = min(burst, tokens + seconds * rate)
        }
        if last.map({ now > $0 }) ?? true { last = now }
        guard Double(n) <= tokens else { return false }
        tokens -= Double(n)
        return true
    }
}
