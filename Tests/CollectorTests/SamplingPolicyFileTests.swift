import Testing
import TailSampling
import TraceModel

@testable import Collector

@Suite struct SamplingPolicyFileTests {
    /// The README's example, as written there.
    static let readmeExample = """
        decision_wait: 10s
        num_traces: 50000
        decision_cache:
          sampled_cache_size: 100_000
          non_sampled_cache_size: 100_000
        policies:
          - name: errors
            type: status_code
            status_code: {status_codes: [ERROR]}
          - name: slow
            type: latency
            latency: {threshold_ms: 500}
          - name: one-percent
            type: probabilistic
            probabilistic: {sampling_percentage: 1}
        """

    @Test func theReadmeExampleReads() throws {
        let file = try SamplingPolicyFile.parse(Self.readmeExample, fileName: "policy.yaml")
        #expect(file.configuration.decisionWait == .seconds(10))
        #expect(file.configuration.numTraces == 50_000)
        #expect(file.configuration.sampledCacheSize == 100_000)
        #expect(file.configuration.policies.map(\.name) == ["errors", "slow", "one-percent"])
        #expect(file.configuration.policies[1].rule == .latency(thresholdMs: 500, upperThresholdMs: nil))
        #expect(file.configuration.policies[2].rule == .probabilistic(samplingPercentage: 1, hashSalt: ""))
        #expect(file.routing == nil)
    }

    @Test func openTelemetryFlowStyleAndNestedPoliciesRead() throws {
        let text = """
            policies:
              [
                {name: p1, type: numeric_attribute, numeric_attribute: {key: http.status_code, min_value: 500, max_value: 599}},
                {name: p2, type: string_attribute, string_attribute: {key: url.path, values: [/health, /metrics], enabled_regex_matching: true, cache_max_size: 10}},
                {name: p3, type: rate_limiting, rate_limiting: {spans_per_second: 35}},
                {name: p4, type: and, and: {and_sub_policy: [{name: a, type: status_code, status_code: {status_codes: [ERROR, UNSET]}}, {name: b, type: always_sample}]}},
                {name: p5, type: drop, drop: {drop_sub_policy: [{name: d, type: string_attribute, string_attribute: {key: url.path, values: [/healthz]}}]}},
                {name: p6, type: composite, composite: {max_total_spans_per_second: 1000, policy_order: [c1, c2],
                  composite_sub_policy: [{name: c1, type: latency, latency: {threshold_ms: 5000, upper_threshold_ms: 10000}}, {name: c2, type: always_sample}],
                  rate_allocation: [{policy: c1, percent: 50}, {policy: c2, percent: 25}]}},
              ]
            """
        let file = try SamplingPolicyFile.parse(text, fileName: "p.yaml")
        #expect(file.configuration.policies.map(\.typeName) == ["numeric_attribute", "string_attribute", "rate_limiting", "and", "drop", "composite"])
        guard case .composite(let composite) = file.configuration.policies[5].rule else { return }
        #expect(composite.rateAllocation == ["c1": 50, "c2": 25])
        #expect(composite.policyOrder == ["c1", "c2"])
    }

    @Test(arguments: [
        ("policies:\n  - name: x\n    type: ottl_condition\n    ottl_condition: {}\n", 3, "policies[0].type", "does not support yet"),
        ("policies:\n  - name: x\n    type: latency\n", 2, "policies[0].latency", "missing"),
        ("policies:\n  - name: x\n    type: latency\n    latency: {threshold: 5}\n", 4, "policies[0].latency.threshold", "unknown key"),
        ("policies:\n  - name: x\n    type: status_code\n    status_code: {status_codes: [ERR]}\n", 4, "policies[0].status_code.status_codes[0]", "is not a status code"),
        ("policies:\n  - name: x\n    type: string_attribute\n    string_attribute: {key: k, values: ['(a'], enabled_regex_matching: true}\n", 4, "policies[0].string_attribute.values[0]", "not a regular expression"),
        ("policies:\n  - {name: x, type: always_sample}\n  - {name: x, type: always_sample}\n", 3, "policies[1].name", "used twice"),
        ("decision_wait: 10\npolicies:\n  - {name: x, type: always_sample}\n", 1, "decision_wait", "expected a duration"),
        ("num_traces: lots\npolicies:\n  - {name: x, type: always_sample}\n", 1, "num_traces", "whole number"),
        ("policies: []\n", 1, "policies", "no policies"),
        ("polices:\n  - {name: x, type: always_sample}\n", 1, "polices", "unknown key"),
        ("policies:\n  - {name: x, type: probabilistic, probabilistic: {sampling_percentage: 150}}\n", 2, "policies[0].probabilistic.sampling_percentage", "between 0 and 100"),
        ("routing: {self: 'http://a:1', peers: ['http://b:1']}\npolicies:\n  - {name: x, type: always_sample}\n", 1, "routing.self", "not one of routing.peers"),
        ("policies:\n  - {name: x, type: composite, composite: {max_total_spans_per_second: 10, policy_order: [y], composite_sub_policy: [{name: z, type: always_sample}]}}\n", 2, "policies[0].composite.policy_order[0]", "not one of"),
    ])
    func mistakesNameTheLineAndTheField(text: String, line: Int, field: String, message: String) {
        do {
            _ = try SamplingPolicyFile.parse(text, fileName: "p.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.line == line, "\(error)")
            #expect(error.field == field, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test func routingNamesEveryPeerAndThisOne() throws {
        let text = """
            routing:
              self: http://127.0.0.1:5318/
              peers: [http://127.0.0.1:4318, HTTP://127.0.0.1:5318]
            policies:
              - {name: all, type: always_sample}
            """
        let routing = try #require(try SamplingPolicyFile.parse(text, fileName: "p.yaml").routing)
        #expect(routing.selfURL == "http://127.0.0.1:5318")
        #expect(routing.peers == ["http://127.0.0.1:4318", "http://127.0.0.1:5318"])
    }
}

@Suite struct TraceRoutingTests {
    @Test func everyCollectorPicksTheSameOwnerAndTheLoadIsEven() {
        let peers = ["http://10.0.0.1:4318", "http://10.0.0.2:4318", "http://10.0.0.3:4318"]
        let a = TraceRouting(peers: peers, selfURL: peers[0])
        let b = TraceRouting(peers: peers.reversed(), selfURL: peers[2])
        var rng = SplitMix64(seed: 11)
        var counts: [String: Int] = [:]
        for _ in 0..<30_000 {
            let id = TraceID.random(using: &rng)
            #expect(a.owner(of: id) == b.owner(of: id))
            counts[a.owner(of: id), default: 0] += 1
        }
        // 10,000 expected each; sd ~82.
        for peer in peers { #expect(abs((counts[peer] ?? 0) - 10_000) < 500, "\(counts)") }
    }

    @Test func removingAPeerMovesOnlyTheTracesItOwned() {
        let peers = ["http://10.0.0.1:4318", "http://10.0.0.2:4318", "http://10.0.0.3:4318"]
        let before = TraceRouting(peers: peers, selfURL: peers[0])
        let after = TraceRouting(peers: Array(peers.prefix(2)), selfURL: peers[0])
        var rng = SplitMix64(seed: 12)
        for _ in 0..<5_000 {
            let id = TraceID.random(using: &rng)
            if before.owner(of: id) != peers[2] { #expect(after.owner(of: id) == before.owner(of: id)) }
        }
    }
}
