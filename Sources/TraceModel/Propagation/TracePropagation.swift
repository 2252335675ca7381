/// What a hop learned from incoming headers.
public struct IncomingTrace: Hashable, Sendable {
    /// The parent context, when some format carried a valid one.
    public var context: TraceContext?
    /// A decision sent without ids (`b3: 0`, a lone `X-B3-Sampled`), to respect when restarting.
    public var sampled: Bool?
    public var debug: Bool
    /// Which format the context came from (for analysis of partial propagation).
    public var formats: Set<PropagationFormat>

    public init(context: TraceContext? = nil, sampled: Bool? = nil, debug: Bool = false, formats: Set<PropagationFormat> = []) {
        self.context = context
        self.sampled = sampled
        self.debug = debug
        self.formats = formats
    }
}

/// Reads and writes every supported format. W3C `traceparent` wins when valid (it is what
/// OpenTelemetry SDKs send); then B3 single, then B3 multi, as Envoy's
/// `USE_B3_WITH_W3C_PROPAGATION` falls back. Invalid headers never fail a request: the trace
/// restarts instead.
public enum TracePropagation {
    /// Every header this module writes, so a hop can clear stale ones before injecting.
    public static let ownedHeaders = [
        W3CTraceContext.traceparent, W3CTraceContext.tracestate,
        B3Propagation.traceIDHeader, B3Propagation.spanIDHeader, B3Propagation.parentSpanIDHeader,
        B3Propagation.sampledHeader, B3Propagation.flagsHeader, B3Propagation.singleHeader,
    ]

    @inlinable
    public static func extract(_ headers: some HeaderCarrier) -> IncomingTrace {
        combine(
            w3c: W3CTraceContext.extract(headers), single: B3Propagation.extractSingle(headers),
            multi: B3Propagation.extractMulti(headers), traceparent: { headers.combined(W3CTraceContext.traceparent) },
            tracestate: { headers.combined(W3CTraceContext.tracestate) })
    }

    /// The non-generic part of `extract`: merges what each format found. `traceparent` and
    /// `tracestate` return each field's lines combined (`HeaderCarrier.combined`).
    public static func combine(
        w3c: TraceContext?, single: B3Propagation.Extracted?, multi: B3Propagation.Extracted?,
        traceparent: () -> String?, tracestate: () -> String?
    ) -> IncomingTrace {
        var incoming = IncomingTrace()
        if w3c != nil { incoming.formats.insert(.w3c) }
        if case .context = single { incoming.formats.insert(.b3single) }
        if case .context = multi { incoming.formats.insert(.b3multi) }

        // Single first, then multi (no array per request).
        func take(_ candidate: B3Propagation.Extracted?) {
            switch candidate {
            case .context(let context)?:
                if incoming.context == nil { incoming.context = context }
                if context.debug { incoming.debug = true }
            case .decisionOnly(let sampled, let debug)?:
                if incoming.sampled == nil { incoming.sampled = sampled }
                if debug { incoming.debug = true }
            case nil:
                break
            }
        }
        take(single)
        take(multi)
        if var w3c {
            // Keep B3's debug flag even when W3C supplies the ids (W3C has no debug bit).
            if incoming.debug { w3c.debug = true; w3c.sampled = true }
            incoming.context = w3c
        }
        // A B3-only hop upstream still forwards `tracestate` (see `inject`): keep it with the B3
        // context, but only when there is no traceparent at all (an invalid one voids tracestate).
        if w3c == nil, incoming.context != nil, traceparent() == nil, let state = tracestate() {
            incoming.context?.traceState = W3CTraceState.normalized(state)
        }
        if let context = incoming.context {
            incoming.sampled = context.sampled ?? incoming.sampled
            incoming.debug = incoming.debug || context.debug
        }
        return incoming
    }

    /// Clears every trace header this module owns, then writes `context` in each format.
    @inlinable
    public static func inject(_ context: TraceContext, formats: [PropagationFormat], into headers: inout some HeaderCarrier) {
        for name in ownedHeaders { headers.remove(name) }
        forEachHeader(context, formats: formats) { headers.replace($0, with: $1) }
    }

    /// Every header `inject` writes, each once, in order, without clearing anything first: for a
    /// fresh header list that holds none of them, which can then simply append.
    @inlinable
    public static func forEachHeader(_ context: TraceContext, formats: [PropagationFormat], _ emit: (String, String) -> Void) {
        var written: (w3c: Bool, multi: Bool, single: Bool) = (false, false, false)
        for format in formats {
            switch format {
            case .w3c where !written.w3c:
                written.w3c = true
                emit(W3CTraceContext.traceparent, W3CTraceContext.format(context))
                if let state = context.traceState, !state.isEmpty { emit(W3CTraceContext.tracestate, state) }
            case .b3multi where !written.multi:
                written.multi = true
                B3Propagation.forEachMultiHeader(context, emit)
            case .b3single where !written.single:
                written.single = true
                emit(B3Propagation.singleHeader, B3Propagation.formatSingle(context))
            default:
                break
            }
        }
        // W3C's tracestate must travel even when only B3 is written toward the app.
        if !written.w3c, let state = context.traceState, !state.isEmpty {
            emit(W3CTraceContext.tracestate, state)
        }
    }
}
