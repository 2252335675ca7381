import Instrumentation
import TraceModel

/// Where the tracer keeps its state inside an `InstrumentationContext`. Keys are private so
/// that only the accessors below (and thus only valid values) touch them.
private enum TraceContextKey: InstrumentationContextKey {
    typealias Value = TraceContext
    static var nameOverride: String? { "meshtrace-trace-context" }
}

private enum SamplingDecisionKey: InstrumentationContextKey {
    typealias Value = MeshtraceSamplingDecision
    static var nameOverride: String? { "meshtrace-sampling-decision" }
}

/// A sampling decision that arrived without trace ids (`b3: 0`, a lone `X-B3-Sampled: 1`,
/// `X-B3-Flags: 1`). The next root span must honour it rather than sample on its own.
public struct MeshtraceSamplingDecision: Hashable, Sendable {
    public var sampled: Bool
    public var debug: Bool

    public init(sampled: Bool, debug: Bool = false) {
        self.sampled = sampled
        self.debug = debug
    }
}

extension InstrumentationContext {
    /// The trace position a new span should be parented on: set by `MeshtraceTracer.extract`
    /// (the remote caller's span) and by every span the tracer starts (that span itself).
    public var meshtraceTraceContext: TraceContext? {
        get { self[TraceContextKey.self] }
        set { self[TraceContextKey.self] = newValue }
    }

    /// An upstream decision without ids; only consulted when there is no `meshtraceTraceContext`.
    public var meshtraceSamplingDecision: MeshtraceSamplingDecision? {
        get { self[SamplingDecisionKey.self] }
        set { self[SamplingDecisionKey.self] = newValue }
    }
}

/// Lets TraceModel's parsers read through any swift-distributed-tracing `Extractor`, so the
/// W3C/B3 rules live in one place (TraceModel) for the sidecar and this library alike.
/// Writes are ignored: extraction never modifies the carrier.
struct ExtractorHeaders<Extract: Extractor>: HeaderCarrier {
    let carrier: Extract.Carrier
    let extractor: Extract

    func first(_ name: String) -> String? {
        extractor.extract(key: name, from: carrier)
    }

    mutating func replace(_ name: String, with value: String) {}
    mutating func remove(_ name: String) {}
}
