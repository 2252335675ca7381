/// Head sampling that every hop decides the same way: the decision is a pure function of the
/// trace id, so a trace sampled at 10% is sampled at every proxy that sees it (not the
/// "ever-increasing chance" of independent per-hop coin flips that Istio PR #6989 warns about).
public struct Sampler: Hashable, Sendable {
    /// 0...100, with 0.01 precision as in Envoy/Istio.
    public var percent: Double

    public init(percent: Double) {
        self.percent = min(100, max(0, percent))
    }

    /// Upstream decisions win; debug/forced traces are always kept; otherwise the trace id decides.
    public func decide(traceID: TraceID, upstream: Bool?, forced: Bool) -> Bool {
        if forced { return true }
        if let upstream { return upstream }
        return isSampled(traceID)
    }

    public func isSampled(_ traceID: TraceID) -> Bool {
        if percent >= 100 { return true }
        if percent <= 0 { return false }
        // The low 64 bits are random in both 64- and 128-bit ids; mix them so ids with
        // structured low bits (counters in tests, some SDKs) still spread evenly.
        return Double(SplitMix64.mix(traceID.low) % 10_000) < percent * 100
    }
}
