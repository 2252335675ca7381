import NIOHTTP1
import TraceModel

/// What one hop decided about tracing: its own span context (fresh span id, parent = the
/// caller's span), the sampling decision, and the request id.
public struct HopTrace: Sendable, Equatable {
    public var context: TraceContext
    public var sampled: Bool
    public var requestID: String
    /// True when the client forced the trace (x-client-trace-id, x-envoy-force-trace, B3 debug).
    public var forced: Bool
    public var healthCheck: Bool
    /// Formats found in the incoming headers (recorded on the span for the propagation doctor).
    public var extracted: Set<PropagationFormat> = []
    /// The sampling decision the incoming headers carried, if any.
    public var upstreamSampled: Bool?
    /// Whether the incoming headers carried a valid parent context.
    public var hadContext = false
}

public enum TraceDecision {
    static let clientTraceID = "x-client-trace-id"
    static let forceTrace = "x-envoy-force-trace"

    /// Reads W3C and B3 headers (invalid ones restart the trace: never an error), keeps or makes
    /// x-request-id, and decides sampling consistently from the trace id.
    static func decide<G: RandomNumberGenerator>(
        headers: HTTPHeaders, path: String, snapshot: ConfigurationBox.Snapshot, random: inout G
    ) -> HopTrace {
        let incoming = TracePropagation.extract(HTTPHeadersCarrier(headers))
        let healthCheck = !snapshot.healthCheckPaths.isEmpty && snapshot.healthCheckPaths.contains(pathOnly(path))
        let forced = incoming.debug
            || !(headers.first(name: clientTraceID) ?? "").isEmpty
            || headers.contains(name: forceTrace)

        let traceID: TraceID
        let parent: SpanID?
        let traceState: String?
        if let context = incoming.context {
            traceID = context.traceID
            parent = context.spanID
            traceState = context.traceState
        } else {
            traceID = TraceID.random(using: &random)
            parent = nil
            traceState = nil
        }
        let sampled = healthCheck ? false : snapshot.sampler.decide(traceID: traceID, upstream: incoming.sampled, forced: forced)
        let context = TraceContext(
            traceID: traceID, spanID: SpanID.random(using: &random), parentSpanID: parent,
            sampled: sampled, debug: incoming.debug && !healthCheck, traceState: traceState)

        var requestID = headers.first(name: RequestID.header) ?? ""
        if !isAcceptableRequestID(requestID) { requestID = FastRequestID.generate(using: &random) }
        return HopTrace(
            context: context, sampled: sampled, requestID: requestID, forced: forced, healthCheck: healthCheck,
            extracted: incoming.formats, upstreamSampled: incoming.sampled, hadContext: incoming.context != nil)
    }

    /// Writes this hop's context in every configured format (old trace headers cleared first),
    /// and the request id. Other vendors' headers (sw8, x-datadog-*, x-ot-span-context, baggage)
    /// are left exactly as they came.
    static func inject(_ trace: HopTrace, formats: [PropagationFormat], into headers: inout HTTPHeaders) {
        var carrier = HTTPHeadersCarrier(headers)
        headers = HTTPHeaders()  // release the extra reference so the carrier mutates in place
        TracePropagation.inject(trace.context, formats: formats, into: &carrier)
        carrier.headers.replaceOrAdd(name: RequestID.header, value: trace.requestID)
        headers = carrier.headers
    }

    static func pathOnly(_ path: String) -> String {
        guard let q = path.firstIndex(where: { $0 == "?" || $0 == "#" }) else { return path }
        return String(path[..<q])
    }

    /// Printable ASCII, not empty, at most 256 bytes: anything else is replaced by a fresh UUID.
    static func isAcceptableRequestID(_ id: String) -> Bool {
        let count = id.utf8.count
        return count > 0 && count <= 256 && id.utf8.allSatisfy { $0 > 32 && $0 < 127 }
    }
}
