import Testing
@testable import SidecarProxy

/// Random draws replayed from a list: which endpoints least-request compares is chosen by the test.
struct ScriptedRandom: RandomNumberGenerator {
    var values: [UInt64]
    mutating func next() -> UInt64 {
        guard !values.isEmpty else { return 0 }
        return values.removeFirst()
    }
}

struct LoadBalancerTests {
    @Test func roundRobinTakesEachCandidateInTurn() {
        var lb = LoadBalancer(policy: .roundRobin)
        var rng = FastRandom(seed: 1)
        let picks = (0..<6).compactMap { _ in lb.pick(from: [0, 1, 2], active: [9, 0, 0], random: &rng) }
        #expect(picks == [0, 1, 2, 0, 1, 2])
    }

    /// Two random draws, the one with fewer active requests wins; on a tie the first drawn.
    @Test func leastRequestKeepsTheLessLoadedOfTwoDraws() {
        var lb = LoadBalancer(policy: .leastRequest)
        let active = [5, 1, 3]
        // `next(upperBound: 3)` takes the high part of word × 3: a word in the middle of
        // each third of the range draws that index.
        func word(for index: Int) -> UInt64 { UInt64(index) * (UInt64.max / 3) + UInt64.max / 6 }
        var draws = ScriptedRandom(values: [word(for: 0), word(for: 1)])
        let a = lb.pick(from: [0, 1, 2], active: active, random: &draws)
        #expect(a == 1)
        draws = ScriptedRandom(values: [word(for: 2), word(for: 0)])
        let b = lb.pick(from: [0, 1, 2], active: active, random: &draws)
        #expect(b == 2)
        draws = ScriptedRandom(values: [word(for: 0), word(for: 2)])
        let c = lb.pick(from: [0, 1, 2], active: [4, 4, 4], random: &draws)
        #expect(c == 0)
    }

    /// Under steady load the busiest endpoint is picked least: with one endpoint far busier,
    /// it only wins when both draws land on it (1 in 9 of three).
    @Test func leastRequestAvoidsTheBusyEndpoint() {
        var lb = LoadBalancer(policy: .leastRequest)
        var rng = FastRandom(seed: 7)
        var counts = [0, 0, 0]
        for _ in 0..<9000 {
            if let i = lb.pick(from: [0, 1, 2], active: [100, 0, 0], random: &rng) { counts[i] += 1 }
        }
        #expect(counts[0] < 1500 && counts[0] > 500, "busy endpoint picked \(counts[0]) of 9000")
        #expect(counts[1] > 3000 && counts[2] > 3000)
    }

    @Test func noCandidateNoPick() {
        var lb = LoadBalancer(policy: .leastRequest)
        var rng = FastRandom(seed: 1)
        let none = lb.pick(from: [], active: [0], random: &rng)
        let only = lb.pick(from: [1], active: [0, 7], random: &rng)
        #expect(none == nil && only == 1)
    }
}
