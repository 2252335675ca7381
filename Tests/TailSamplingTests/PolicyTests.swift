import Testing
import TailSampling
import TraceModel

/// Each policy as OpenTelemetry's tail sampler defines it, on whole traces (decided at once:
/// every fixture trace is complete).
@Suite struct PolicyTests {
    func decide(_ policies: [SamplingPolicy], _ spans: [Span], now: Double = 0) -> TraceDecision? {
        var s = sampler(config(policies))
        return s.receive(spans, now: at(now)).decision(for: spans[0].traceID)
    }

    func with(_ spans: [Span], attribute key: String, _ value: AttributeValue, onSpan index: Int = 2) -> [Span] {
        var spans = spans
        spans[index].attributes.append(Attribute(key, value))
        return spans
    }

    @Test func statusCodeSeesErrorStatusAndZipkinErrorTags() {
        let errors = [SamplingPolicy(name: "e", rule: .statusCode([.error]))]
        #expect(decide(errors, meshTrace(traceID(1), error: true))?.isSampled == true)
        #expect(decide(errors, meshTrace(traceID(2))) == .notSampled)
        #expect(decide(errors, with(meshTrace(traceID(3)), attribute: "error", .string("upstream reset")))?.isSampled == true)
        let unset = [SamplingPolicy(name: "u", rule: .statusCode([.unset]))]
        #expect(decide(unset, meshTrace(traceID(4)))?.isSampled == true)
    }

    @Test func latencyIsEarliestStartToLatestEnd() {
        let slow = [SamplingPolicy(name: "slow", rule: .latency(thresholdMs: 500, upperThresholdMs: nil))]
        #expect(decide(slow, meshTrace(traceID(1), durationMs: 499)) == .notSampled)
        #expect(decide(slow, meshTrace(traceID(2), durationMs: 500))?.isSampled == true)
        let band = [SamplingPolicy(name: "band", rule: .latency(thresholdMs: 500, upperThresholdMs: 1000))]
        #expect(decide(band, meshTrace(traceID(3), durationMs: 500)) == .notSampled)  // above, not at
        #expect(decide(band, meshTrace(traceID(4), durationMs: 1000))?.isSampled == true)
        #expect(decide(band, meshTrace(traceID(5), durationMs: 1001)) == .notSampled)
    }

    @Test func numericAttributeReadsNumbersAndZipkinNumericStrings() {
        let fivexx = [SamplingPolicy(name: "5xx", rule: .numericAttribute(key: "http.status_code", minValue: 500, maxValue: 599, invertMatch: false))]
        #expect(decide(fivexx, meshTrace(traceID(1), error: true))?.isSampled == true)  // "500" as Zipkin sends it
        #expect(decide(fivexx, meshTrace(traceID(2))) == .notSampled)
        let atLeast = [SamplingPolicy(name: "big", rule: .numericAttribute(key: "n", minValue: 10, maxValue: nil, invertMatch: false))]
        #expect(decide(atLeast, with(meshTrace(traceID(3)), attribute: "n", .int(1 << 40)))?.isSampled == true)
        #expect(decide(atLeast, with(meshTrace(traceID(4)), attribute: "n", .double(9.9))) == .notSampled)
        let inverted = [SamplingPolicy(name: "not5xx", rule: .numericAttribute(key: "http.status_code", minValue: 500, maxValue: 599, invertMatch: true))]
        #expect(decide(inverted, meshTrace(traceID(5)))?.isSampled == true)
        #expect(decide(inverted, meshTrace(traceID(6), error: true)) == .dropped(policy: "not5xx"))
    }

    @Test func stringAttributeExactOrRegexAnywhereInTheValue() {
        let exact = [SamplingPolicy(name: "s", rule: .stringAttribute(key: "tenant", values: ["acme"], regex: false, invertMatch: false))]
        #expect(decide(exact, with(meshTrace(traceID(1)), attribute: "tenant", .string("acme")))?.isSampled == true)
        #expect(decide(exact, with(meshTrace(traceID(2)), attribute: "tenant", .string("acme-eu"))) == .notSampled)
        #expect(decide(exact, with(meshTrace(traceID(3)), attribute: "tenant", .int(1))) == .notSampled)
        var resource = meshTrace(traceID(4))
        resource[0].resource.append(Attribute("tenant", .string("acme")))
        #expect(decide(exact, resource)?.isSampled == true)
        let regex = [SamplingPolicy(name: "r", rule: .stringAttribute(key: "url.path", values: ["/api/v[0-9]+/pay"], regex: true, invertMatch: false))]
        #expect(decide(regex, with(meshTrace(traceID(5)), attribute: "url.path", .string("/shop/api/v2/pay/7")))?.isSampled == true)
        #expect(decide(regex, with(meshTrace(traceID(6)), attribute: "url.path", .string("/api/vx/pay"))) == .notSampled)
        let health = [
            SamplingPolicy(name: "all", rule: .alwaysSample),
            SamplingPolicy(name: "no-health", rule: .stringAttribute(key: "url.path", values: ["/healthz"], regex: false, invertMatch: true)),
        ]
        #expect(decide(health, with(meshTrace(traceID(7)), attribute: "url.path", .string("/healthz"))) == .dropped(policy: "no-health"))
        #expect(decide(health, with(meshTrace(traceID(8)), attribute: "url.path", .string("/api")))?.isSampled == true)
    }

    @Test func fnv1aMatchesReferenceVectors() {
        // Go's fnv.New64a over "default-hash-seed" + 16 id bytes; and thresholds computed with
        // exact fractions (Python) for Go's 64-bit big.Float product.
        let id = TraceID(hex: "0af7651916cd43dd8448eb211c80319c")
        #expect(id.map { ProbabilisticThreshold.hash(salt: "default-hash-seed", traceID: $0) } == 0x33bf_83d4_5f51_634c)
        #expect(ProbabilisticThreshold.threshold(percentage: 5) == 922_337_203_685_477_631)
        #expect(ProbabilisticThreshold.threshold(percentage: 1) == 184_467_440_737_095_519)
        #expect(ProbabilisticThreshold.threshold(percentage: 50) == 9_223_372_036_854_775_807)
        #expect(ProbabilisticThreshold.threshold(percentage: 33) == 6_087_425_544_324_152_319)
        #expect(ProbabilisticThreshold.threshold(percentage: 0.1) == 18_446_744_073_709_551)
        #expect(ProbabilisticThreshold.threshold(percentage: 99.9) == 18_428_297_329_635_844_095)
        #expect(ProbabilisticThreshold.threshold(percentage: 0) == 0)
        #expect(ProbabilisticThreshold.threshold(percentage: 150) == .max)
    }

    @Test func probabilisticKeepsAboutItsShareWithTheMatchingAdjustedCount() {
        let fivePercent = [SamplingPolicy(name: "p", rule: .probabilistic(samplingPercentage: 5, hashSalt: ""))]
        var s = sampler(config(fivePercent, numTraces: 100_000))
        var rng = SplitMix64(seed: 42)
        var kept = 0
        let n = 20_000
        for _ in 0..<n {
            let id = TraceID.random(using: &rng)
            let out = s.receive(meshTrace(id), now: at(0))
            if case .sampled(let count, _)? = out.decision(for: id) {
                kept += 1
                #expect(count == 20)
            }
            // The same choice as the hash alone.
            let expected = ProbabilisticThreshold.samples(traceID: id, salt: "default-hash-seed", threshold: ProbabilisticThreshold.threshold(percentage: 5))
            #expect((out.decision(for: id)?.isSampled ?? false) == expected)
        }
        // 20,000 draws at 5%: mean 1,000, sd 30.8; 5 sd either side.
        #expect(abs(kept - 1000) < 155)
    }

    @Test func adjustedCountIsOneWhenARuleOnContentKeptIt() {
        let policies = [
            SamplingPolicy(name: "errors", rule: .statusCode([.error])),
            SamplingPolicy(name: "rest", rule: .probabilistic(samplingPercentage: 5, hashSalt: "")),
            SamplingPolicy(name: "more", rule: .probabilistic(samplingPercentage: 10, hashSalt: "")),
        ]
        var s = sampler(config(policies))
        var rng = SplitMix64(seed: 7)
        for _ in 0..<400 {
            let id = TraceID.random(using: &rng)
            switch s.receive(meshTrace(id, error: true), now: at(0)).decision(for: id) {
            case .sampled(let count, let policy)?:
                #expect(count == 1)
                #expect(policy == "errors")
            default: Issue.record("an error trace was not kept")
            }
            // Same salt: 5% implies 10%, so the chance is 10%, not 1 - 0.95 * 0.9.
            let plain = TraceID.random(using: &rng)
            if case .sampled(let count, _)? = s.receive(meshTrace(plain), now: at(0)).decision(for: plain) {
                #expect(abs(count - 10) < 1e-9)
            }
        }
    }

    @Test func rateLimitingIsATokenBucketWithTwiceTheRateAsBurst() {
        let limited = [SamplingPolicy(name: "rl", rule: .rateLimiting(spansPerSecond: 10))]
        var s = sampler(config(limited))
        // Three spans a trace: the full bucket (20) takes six, then 2 tokens are left.
        let first = (1...7 as ClosedRange<UInt64>).map { n in s.receive(meshTrace(traceID(n)), now: at(0)).decision(for: traceID(n))?.isSampled }
        #expect(first == [true, true, true, true, true, true, false])
        // A tenth of a second adds one token: 3 are there, one trace passes.
        #expect(s.receive(meshTrace(traceID(8)), now: at(0.1)).decision(for: traceID(8))?.isSampled == true)
        #expect(s.receive(meshTrace(traceID(9)), now: at(0.1)).decision(for: traceID(9))?.isSampled == false)
        // A long pause refills to the burst, not beyond.
        let later = (10...17 as ClosedRange<UInt64>).map { n in s.receive(meshTrace(traceID(n)), now: at(60)).decision(for: traceID(n))?.isSampled }
        #expect(later == [true, true, true, true, true, true, false, false])
    }

    @Test func andNeedsEverySubPolicyAndMultipliesChances() {
        let slowErrors = [SamplingPolicy(name: "slow-errors", rule: .and([
            SamplingPolicy(name: "e", rule: .statusCode([.error])),
            SamplingPolicy(name: "s", rule: .latency(thresholdMs: 100, upperThresholdMs: nil)),
        ]))]
        #expect(decide(slowErrors, meshTrace(traceID(1), durationMs: 200, error: true))?.isSampled == true)
        #expect(decide(slowErrors, meshTrace(traceID(2), durationMs: 50, error: true)) == .notSampled)
        #expect(decide(slowErrors, meshTrace(traceID(3), durationMs: 200)) == .notSampled)

        let someErrors = [SamplingPolicy(name: "half-the-errors", rule: .and([
            SamplingPolicy(name: "e", rule: .statusCode([.error])),
            SamplingPolicy(name: "p", rule: .probabilistic(samplingPercentage: 50, hashSalt: "")),
        ]))]
        var rng = SplitMix64(seed: 3)
        var s = sampler(config(someErrors))
        for _ in 0..<50 {
            let id = TraceID.random(using: &rng)
            if case .sampled(let count, _)? = s.receive(meshTrace(id, error: true), now: at(0)).decision(for: id) { #expect(count == 2) }
        }
    }

    @Test func dropVetoesEveryOtherPolicy() {
        let policies = [
            SamplingPolicy(name: "errors", rule: .statusCode([.error])),
            SamplingPolicy(name: "no-health", rule: .drop([
                SamplingPolicy(name: "h", rule: .stringAttribute(key: "url.path", values: ["/healthz"], regex: false, invertMatch: false)),
            ])),
        ]
        let healthError = with(meshTrace(traceID(1), error: true), attribute: "url.path", .string("/healthz"))
        #expect(decide(policies, healthError) == .dropped(policy: "no-health"))
        #expect(decide(policies, meshTrace(traceID(2), error: true))?.isSampled == true)
    }

    @Test func compositeGivesEachSubPolicyItsShareOfASpansPerSecondBudget() {
        let composite = SamplingPolicy(name: "c", rule: .composite(.init(
            maxTotalSpansPerSecond: 30, policyOrder: ["errors", "everything"],
            subPolicies: [
                SamplingPolicy(name: "everything", rule: .alwaysSample),
                SamplingPolicy(name: "errors", rule: .statusCode([.error])),
            ],
            rateAllocation: ["errors": 50, "everything": 30])))
        var s = sampler(config([composite]))
        func kept(_ n: UInt64, error: Bool, at time: Double) -> Bool {
            s.receive(meshTrace(traceID(n), error: error), now: at(time)).decision(for: traceID(n))?.isSampled ?? false
        }
        // errors: 15 spans a second (5 traces); everything: 9 spans (3 traces).
        #expect((1...6 as ClosedRange<UInt64>).map { kept($0, error: true, at: 0) } == [true, true, true, true, true, false])
        #expect((7...10 as ClosedRange<UInt64>).map { kept($0, error: false, at: 0.5) } == [true, true, true, false])
        // The next second starts every budget over.
        #expect(kept(11, error: true, at: 1.0))
        #expect(kept(12, error: false, at: 1.0))
    }

    @Test func invertedSampledDoesNotKeepWhenAnotherPolicySaidNo() {
        let policies = [
            SamplingPolicy(name: "not-acme", rule: .stringAttribute(key: "tenant", values: ["acme"], regex: false, invertMatch: true)),
            SamplingPolicy(name: "errors", rule: .statusCode([.error])),
        ]
        #expect(decide(policies, meshTrace(traceID(1))) == .notSampled)
        #expect(decide(policies, meshTrace(traceID(2), error: true))?.isSampled == true)
        #expect(decide([policies[0]], meshTrace(traceID(3)))?.isSampled == true)
    }

    @Test func sampleOnFirstMatchStopsEvaluating() {
        var c = config([
            SamplingPolicy(name: "all", rule: .alwaysSample),
            SamplingPolicy(name: "rl", rule: .rateLimiting(spansPerSecond: 1)),
        ])
        c.sampleOnFirstMatch = true
        var s = sampler(c)
        let out = s.receive(meshTrace(traceID(1)), now: at(0))
        #expect(out.policyVerdicts.map(\.policy) == ["all"])
    }
}
