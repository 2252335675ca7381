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
    /// Formats whose context disagreed with the one used (W3C wins, then B3, then sw8).
    public var disagreeing: Set<PropagationFormat> = []
    /// With `sw8` configured: what this hop writes into it besides the ids.
    public var sw8Origin: Sw8Propagation.Origin?
    /// Without `sw8` configured: the incoming `sw8`, written back unchanged (it is then the
    /// application's own header, as Envoy without the SkyWalking tracer treats it).
    public var passThroughSW8: String?
}

public enum TraceDecision {
    static let clientTraceID = "x-client-trace-id"
    static let forceTrace = "x-envoy-force-trace"

    /// Reads W3C and B3 headers (invalid ones restart the trace: never an error), keeps or makes
    /// x-request-id, and decides sampling consistently from the trace id.
    static func decide<G: RandomNumberGenerator>(
        headers: HTTPHeaders, path: String, snapshot: ConfigurationBox.Snapshot, random: inout G
    ) -> HopTrace {
        decide(scan: RequestHeadScan(headers), path: path, snapshot: snapshot, random: &random)
    }

    static func decide<G: RandomNumberGenerator>(
        scan: RequestHeadScan, path: String, snapshot: ConfigurationBox.Snapshot, random: inout G
    ) -> HopTrace {
        let readsSW8 = snapshot.sw8Service != nil
        let incoming = scan.trace.isEmpty ? IncomingTrace() : TracePropagation.extract(scan.trace, readSW8: readsSW8)
        let healthCheck = !snapshot.healthCheckPaths.isEmpty && snapshot.healthCheckPaths.contains(pathOnly(path))
        let forced = incoming.debug || !(scan.clientTraceID ?? "").isEmpty || scan.forceTrace

        let traceID: TraceID
        let parent: SpanID?
        let traceState: String?
        let randomTraceID: Bool
        let sw8TraceID: String?
        if let context = incoming.context {
            traceID = context.traceID
            parent = context.spanID
            traceState = context.traceState
            randomTraceID = context.randomTraceID  // the trace id's own property: passed on as it came
            sw8TraceID = context.sw8TraceID
        } else {
            // A new trace: 128 bits from the generator, so W3C Level 2's random-trace-id flag is set.
            traceID = TraceID.random(using: &random)
            parent = nil
            traceState = nil
            randomTraceID = true
            sw8TraceID = nil
        }
        let sampled = healthCheck ? false : snapshot.sampler.decide(traceID: traceID, upstream: incoming.sampled, forced: forced)
        let context = TraceContext(
            traceID: traceID, spanID: SpanID.random(using: &random), parentSpanID: parent,
            sampled: sampled, debug: incoming.debug && !healthCheck, traceState: traceState, randomTraceID: randomTraceID,
            sw8TraceID: sw8TraceID)

        var requestID = scan.requestID ?? ""
        if !isAcceptableRequestID(requestID) { requestID = FastRequestID.generate(using: &random) }
        var hop = HopTrace(
            context: context, sampled: sampled, requestID: requestID, forced: forced, healthCheck: healthCheck,
            extracted: incoming.formats, upstreamSampled: incoming.sampled, hadContext: incoming.context != nil,
            disagreeing: incoming.disagreeing)
        if let service = snapshot.sw8Service {
            hop.sw8Origin = Sw8Propagation.Origin(
                serviceBase64: service.name, instanceBase64: service.instance, endpoint: pathOnly(path), targetAddress: scan.host ?? "")
        } else if let incomingSW8 = scan.trace.first(Sw8Propagation.header) {
            hop.passThroughSW8 = incomingSW8
        }
        return hop
    }

    /// Writes this hop's context in every configured format, and the request id, into the headers
    /// the hop adds (the scan already left the incoming trace headers out). Other vendors' headers
    /// (x-datadog-*, x-ot-span-context, baggage, sw8-correlation, sw8-x) stay in the kept ones,
    /// exactly as they came; so does `sw8` when it is not among `formats`.
    /// `added` must not hold trace headers yet: they are appended, not replaced (the hop builds a
    /// fresh list for them, so no per-request search for stale ones is needed).
    static func inject(_ trace: HopTrace, formats: [PropagationFormat], into added: inout AddedHeaders) {
        TracePropagation.forEachHeader(trace.context, formats: formats, sw8: trace.sw8Origin) { added.add($0, $1) }
        if let incomingSW8 = trace.passThroughSW8 { added.add(Sw8Propagation.header, incomingSW8) }
        added.add(RequestID.header, trace.requestID)
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
