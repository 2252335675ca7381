import MeshtraceTesting
import TailSampling
import TraceModel

typealias Instant = ManualClock.Instant

func at(_ seconds: Double) -> Instant { Instant(offset: .milliseconds(Int64(seconds * 1000))) }

func traceID(_ n: UInt64) -> TraceID { TraceID(high: 0x1234, low: n) }

func spanID(_ n: UInt64) -> SpanID {
    guard let id = SpanID(n) else { preconditionFailure("span id 0") }
    return id
}

/// A mesh-shaped trace: root SERVER (1) → CLIENT (2) → SERVER (3), `durationMs` long.
func meshTrace(_ trace: TraceID, durationMs: UInt64 = 20, error: Bool = false, base: UInt64 = 1_700_000_000_000_000_000) -> [Span] {
    let duration = durationMs * 1_000_000
    return [
        Span(traceID: trace, spanID: spanID(1), kind: .server, name: "GET /", startTimeNanos: base, durationNanos: duration, serviceName: "gateway"),
        Span(traceID: trace, spanID: spanID(2), parentSpanID: spanID(1), kind: .client, name: "GET /", startTimeNanos: base + 1000,
             durationNanos: duration - 2000, serviceName: "gateway"),
        Span(traceID: trace, spanID: spanID(3), parentSpanID: spanID(2), kind: .server, name: "GET /", startTimeNanos: base + 2000,
             durationNanos: duration - 4000, serviceName: "backend", attributes: [Attribute("http.status_code", .string(error ? "500" : "200"))],
             status: error ? .error() : .unset),
    ]
}

func sampler(_ configuration: TailSamplingConfiguration) -> TailSampler<Instant> {
    do {
        return try TailSampler(configuration: configuration)
    } catch {
        preconditionFailure("\(error)")
    }
}

func config(_ policies: [SamplingPolicy], wait: Duration = .seconds(10), numTraces: Int = 100) -> TailSamplingConfiguration {
    var c = TailSamplingConfiguration(policies: policies)
    c.decisionWait = wait
    c.numTraces = numTraces
    return c
}

extension TailSamplerOutput {
    var decidedIDs: [TraceID] { decided.map(\.traceID) }
    func decision(for id: TraceID) -> TraceDecision? { decided.first { $0.traceID == id }?.decision }
}
