import Collector
import Foundation
import Synchronization
import TailSampling
import Testing

@testable import MeshRunner

/// `telemetry: mode: tail` in mesh.yaml: read with its settings, refused with the field when
/// wrong, and applied by giving the collector its policy before the sidecars send everything.
@Suite struct MeshTailModeTests {
    let parser = MeshFileParser(fileName: "mesh.yaml")
    let service = "services:\n  - name: web\n    command: x\n"

    @Test func tailModeReadsItsSettingsAndSidecarsSendEverything() throws {
        let file = try parser.parse(service + """
            telemetry:
              sampling: 10
              mode: tail
              tail: {slowerThan: 2s, keepPercent: 1, decisionWait: 3s}
            """)
        #expect(file.telemetry.mode == .tail)
        #expect(file.telemetry.tail.slowerThanMs == 2_000)
        #expect(file.telemetry.tail.keepPercent == 1)
        #expect(file.telemetry.tail.decisionWait == .seconds(3))
        #expect(file.telemetry.effectiveSamplingPercent == 100)
        let head = try parser.parse(service + "telemetry:\n  sampling: 10\n")
        #expect(head.telemetry.mode == .head && head.telemetry.effectiveSamplingPercent == 10)
    }

    @Test(arguments: [
        ("telemetry:\n  mode: tails\n", "telemetry.mode", 5),
        ("telemetry:\n  mode: tail\n  tail: {keepPercent: 150}\n", "telemetry.tail.keepPercent", 6),
        ("telemetry:\n  mode: tail\n  tail: {slowerThan: soon}\n", "telemetry.tail.slowerThan", 6),
        ("telemetry:\n  mode: tail\n  tail: {keep: 5}\n", "telemetry.tail", 6),
    ])
    func mistakesNameTheFieldAndLine(yaml: String, field: String, line: Int) {
        do {
            _ = try parser.parse(service + yaml)
            Issue.record("accepted: \(yaml)")
        } catch {
            #expect(error.field.hasPrefix(field), "\(error)")
            #expect(error.line == line, "\(error)")
        }
    }

    @Test func applyingTailModeGivesTheCollectorItsPolicyFirst() throws {
        let state = MeshState(file: try parser.parse(service))
        let given = Mutex<[SamplingPolicyFile?]>([])
        state.setSamplingTarget { policy in given.withLock { $0.append(policy) } }

        var spec = TelemetrySpec()
        spec.mode = .tail
        spec.tail.slowerThanMs = 750
        spec.tail.keepPercent = 2
        try state.apply(spec)
        let policy = try #require(given.withLock { $0.last } ?? nil)
        #expect(policy.configuration.policies.map(\.name) == ["errors", "slow", "rest"])
        #expect(policy.configuration.policies[1].rule == .latency(thresholdMs: 750, upperThresholdMs: nil))
        #expect(policy.configuration.policies[2].rule == .probabilistic(samplingPercentage: 2, hashSalt: ProbabilisticThreshold.defaultSalt))
        #expect(state.telemetry.mode == .tail)

        // A policy file that cannot be read changes nothing: not the collector, not the mesh.
        var broken = spec
        broken.tail.policyFile = "/nonexistent/sampling.yaml"
        #expect(throws: MeshFileError.self) { try state.apply(broken) }
        #expect(given.withLock { $0.count } == 1)
        #expect(state.telemetry.tail.policyFile == nil)

        // Back to head sampling: the collector stops deciding.
        spec.mode = .head
        try state.apply(spec)
        #expect(given.withLock { $0.count } == 2 && given.withLock { $0.last } == .some(nil))
    }
}
