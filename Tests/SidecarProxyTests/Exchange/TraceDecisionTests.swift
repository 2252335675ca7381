import NIOHTTP1
import Testing
import TraceModel
@testable import SidecarProxy

/// What one hop decides about tracing from the incoming headers and the configuration.
struct TraceDecisionTests {
    func snapshot(_ configure: (inout SidecarConfiguration) -> Void) -> ConfigurationBox.Snapshot {
        var c = SidecarConfiguration()
        configure(&c)
        return ConfigurationBox(c).snapshot
    }

    @Test func traceDecisionHonoursHeaders() {
        var rng = FastRandom(seed: 7)
        let snap = snapshot { $0.samplingPercent = 0 }
        let w3c = TraceDecision.decide(
            headers: HTTPHeaders([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("x-request-id", "r")]),
            path: "/a", snapshot: snap, random: &rng)
        #expect(w3c.context.traceID.hex32 == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(w3c.context.parentSpanID?.hex == "00f067aa0ba902b7")
        #expect(w3c.context.spanID.hex != "00f067aa0ba902b7")
        #expect(w3c.sampled && w3c.requestID == "r")
        let fresh = TraceDecision.decide(headers: HTTPHeaders([("x-request-id", "bad id with spaces")]), path: "/", snapshot: snap, random: &rng)
        #expect(!fresh.sampled && fresh.context.parentSpanID == nil && fresh.requestID.count == 36)
        let decisionOnly = TraceDecision.decide(headers: HTTPHeaders([("b3", "1")]), path: "/", snapshot: snap, random: &rng)
        #expect(decisionOnly.sampled && decisionOnly.context.parentSpanID == nil)
        let health = TraceDecision.decide(headers: HTTPHeaders([("x-b3-flags", "1")]), path: "/healthz?verbose", snapshot: snap, random: &rng)
        #expect(!health.sampled && health.healthCheck)
        // Consistent by trace id: the same incoming trace gets the same decision at any rate.
        let half = snapshot { $0.samplingPercent = 50 }
        var decisions = Set<Bool>()
        for _ in 0..<5 {
            decisions.insert(TraceDecision.decide(headers: HTTPHeaders([("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124"), ("x-b3-spanid", "a2fb4a1d1a96d312")]),
                                                  path: "/", snapshot: half, random: &rng).sampled)
        }
        #expect(decisions.count == 1)
    }

    /// W3C Level 2: a trace this hop starts carries the random-trace-id flag (its id is 128
    /// random bits); a continued trace keeps the flag it came with, set or not.
    @Test func theRandomTraceIDFlagIsSetOnNewTracesAndKeptOnOthers() {
        var rng = FastRandom(seed: 3)
        let snap = snapshot { _ in }
        let fresh = TraceDecision.decide(headers: HTTPHeaders(), path: "/", snapshot: snap, random: &rng)
        #expect(fresh.context.randomTraceID)
        #expect(W3CTraceContext.format(fresh.context).hasSuffix("-03"))
        let plain = TraceDecision.decide(
            headers: HTTPHeaders([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]), path: "/", snapshot: snap, random: &rng)
        #expect(!plain.context.randomTraceID && W3CTraceContext.format(plain.context).hasSuffix("-01"))
        let random = TraceDecision.decide(
            headers: HTTPHeaders([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03")]), path: "/", snapshot: snap, random: &rng)
        #expect(random.context.randomTraceID && W3CTraceContext.format(random.context).hasSuffix("-03"))
        let b3 = TraceDecision.decide(headers: HTTPHeaders([("b3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1")]), path: "/", snapshot: snap, random: &rng)
        #expect(!b3.context.randomTraceID, "B3 says nothing about how its id was made")
    }

    /// The scan combines repeated W3C fields as HTTP does: two traceparent lines restart the
    /// trace, several tracestate lines are one list.
    @Test func repeatedW3CFieldsCombine() {
        var rng = FastRandom(seed: 5)
        let snap = snapshot { _ in }
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let twice = TraceDecision.decide(headers: HTTPHeaders([("traceparent", tp), ("traceparent", tp)]), path: "/", snapshot: snap, random: &rng)
        #expect(!twice.hadContext && twice.context.traceID.hex32 != "4bf92f3577b34da6a3ce929d0e0e4736" && twice.context.traceState == nil)
        let lines = TraceDecision.decide(
            headers: HTTPHeaders([("traceparent", tp), ("tracestate", "a=1"), ("x-other", "y"), ("TRACESTATE", " b=2 ,")]), path: "/", snapshot: snap,
            random: &rng)
        #expect(lines.hadContext && lines.context.traceState == "a=1,b=2")
    }
}
