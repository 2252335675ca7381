import TraceModel

/// What every request does first, written once for HTTP/1 (`ProxyHandler`) and HTTP/2
/// (`HTTP2StreamRelay`): the trace decision, parent inference, the mesh's own markers for the
/// next hop, and loop detection. Before this was shared, HTTP/2 had neither parent inference nor
/// loop detection, so a gRPC call and an HTTP/1 request through the same sidecar behaved apart.
struct HopStart {
    var trace: HopTrace
    /// Registered with `ParentInference` (inbound, `inferParent` on): hand back to
    /// `ParentInference.finished` once the request is answered.
    var inferenceToken: Int?
    /// The trace was joined to the one inbound request in flight (`ParentInference`).
    var parentInferred = false
    /// Who sent the request, when known (`LoopGuard.addMarkers`).
    var sourceService: String?
    /// The request came back to an outbound listener: answer 508 (`LoopGuard`).
    var looped = false

    /// Decides the trace and adds the mesh's markers to `added` (the caller adds the trace
    /// headers with `TraceDecision.inject` where its head wants them).
    static func begin(
        scan: RequestHeadScan, path: String, direction: ProxyDirection, snapshot: ConfigurationBox.Snapshot,
        inference: ParentInference, random: inout FastRandom, added: inout AddedHeaders
    ) -> HopStart {
        let config = snapshot.config
        var start = HopStart(trace: TraceDecision.decide(scan: scan, path: path, snapshot: snapshot, random: &random))
        if config.inferParent {
            start.inferParent(direction: direction, requestID: scan.requestID, inference: inference)
        }
        start.sourceService = LoopGuard.addMarkers(direction: direction, serviceName: config.serviceName, scan: scan, into: &added)
        // Only an outbound or gateway listener adds the loop marker and every inbound strips it,
        // so an outbound request that already carries it came back to a proxy: a loop.
        start.looped = LoopGuard.isLoop(direction: direction, marked: scan.loopMarked)
        return start
    }

    private mutating func inferParent(direction: ProxyDirection, requestID: String?, inference: ParentInference) {
        switch direction {
        case .inbound:
            // Every inbound request counts, health checks included: an extra one in flight can
            // only make inference ambiguous, never wrong.
            inferenceToken = inference.started(ParentInference.Inbound(context: trace.context, sampled: trace.sampled, requestID: trace.requestID))
        case .outbound where !trace.hadContext && trace.upstreamSampled == nil:
            guard case .inferred(let inbound) = inference.infer() else { return }
            // Child of the inbound SERVER span, with its sampling decision and tracestate, so
            // the rest of the path joins the same trace.
            trace.context = TraceContext(
                traceID: inbound.context.traceID, spanID: trace.context.spanID, parentSpanID: inbound.context.spanID,
                sampled: inbound.sampled, debug: inbound.context.debug, traceState: inbound.context.traceState,
                randomTraceID: inbound.context.randomTraceID, sw8TraceID: inbound.context.sw8TraceID)
            trace.sampled = inbound.sampled
            // The app dropped x-request-id too: the request it serves is the one to log under.
            if !TraceDecision.isAcceptableRequestID(requestID ?? "") {
                trace.requestID = inbound.requestID
            }
            parentInferred = true
        case .outbound, .gateway:
            break
        }
    }
}
