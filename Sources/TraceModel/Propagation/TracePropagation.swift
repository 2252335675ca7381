/// What a hop learned from incoming headers.
public struct IncomingTrace: Hashable, Sendable {
    /// The parent context, when some format carried a valid one.
    public var context: TraceContext?
    /// A decision sent without ids (`b3: 0`, a lone `X-B3-Sampled`), to respect when restarting.
    public var sampled: Bool?
    public var debug: Bool
    /// Which format the context came from (for analysis of partial propagation).
    public var formats: Set<PropagationFormat>
    /// Formats that carried a valid context other than the one used (another trace, or another
    /// parent span): recorded on the span, so `analyze` can say which headers disagree.
    public var disagreeing: Set<PropagationFormat>

    public init(
        context: TraceContext? = nil, sampled: Bool? = nil, debug: Bool = false, formats: Set<PropagationFormat> = [],
        disagreeing: Set<PropagationFormat> = []
    ) {
        self.context = context
        self.sampled = sampled
        self.debug = debug
        self.formats = formats
        self.disagreeing = disagreeing
    }
}

/// Reads and writes every supported format. W3C `traceparent` wins when valid (it is what
/// OpenTelemetry SDKs send); then B3 single, then B3 multi, as Envoy's
/// `USE_B3_WITH_W3C_PROPAGATION` falls back; then SkyWalking's `sw8` (read only when asked for).
/// Formats whose context disagrees with the winner are listed in `IncomingTrace.disagreeing`.
/// Invalid headers never fail a request: the trace restarts instead.
public enum TracePropagation {
    /// Every header this module writes, so a hop can clear stale ones before injecting.
    public static let ownedHeaders = [
        W3CTraceContext.traceparent, W3CTraceContext.tracestate,
        B3Propagation.traceIDHeader, B3Propagation.spanIDHeader, B3Propagation.parentSpanIDHeader,
        B3Propagation.sampledHeader, B3Propagation.flagsHeader, B3Propagation.singleHeader, Sw8Propagation.header,
    ]

    /// - Parameter readSW8: read `sw8` too (the sidecar does when `sw8` is among its formats;
    ///   otherwise the header is an application's own and passes through untouched).
    @inlinable
    public static func extract(_ headers: some HeaderCarrier, readSW8: Bool = false) -> IncomingTrace {
        combine(
            w3c: W3CTraceContext.extract(headers), single: B3Propagation.extractSingle(headers),
            multi: B3Propagation.extractMulti(headers),
            sw8: readSW8 ? headers.first(Sw8Propagation.header).flatMap(Sw8Propagation.extract) : nil,
            traceparent: { headers.combined(W3CTraceContext.traceparent) },
            tracestate: { headers.combined(W3CTraceContext.tracestate) })
    }

    /// The non-generic part of `extract`: merges what each format found. `traceparent` and
    /// `tracestate` return each field's lines combined (`HeaderCarrier.combined`).
    public static func combine(
        w3c: TraceContext?, single: B3Propagation.Extracted?, multi: B3Propagation.Extracted?, sw8: TraceContext? = nil,
        traceparent: () -> String?, tracestate: () -> String?
    ) -> IncomingTrace {
        var incoming = IncomingTrace()
        if w3c != nil { incoming.formats.insert(.w3c) }
        if case .context = single { incoming.formats.insert(.b3single) }
        if case .context = multi { incoming.formats.insert(.b3multi) }
        if sw8 != nil { incoming.formats.insert(.sw8) }

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
        if incoming.context == nil, let sw8 { incoming.context = sw8 }
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
        if var context = incoming.context {
            incoming.sampled = context.sampled ?? incoming.sampled
            incoming.debug = incoming.debug || context.debug
            // Only one format's context survives; note the others that named another position.
            func differs(_ other: TraceContext) -> Bool { other.traceID != context.traceID || other.spanID != context.spanID }
            if case .context(let c)? = single, differs(c) { incoming.disagreeing.insert(.b3single) }
            if case .context(let c)? = multi, differs(c) { incoming.disagreeing.insert(.b3multi) }
            if let sw8 {
                if differs(sw8) {
                    incoming.disagreeing.insert(.sw8)
                } else if context.sw8TraceID == nil, sw8.sw8TraceID != nil {
                    // Same trace reached through a hashed SkyWalking id: keep the original to write on.
                    context.sw8TraceID = sw8.sw8TraceID
                    incoming.context = context
                }
            }
            if let w3c, differs(w3c) { incoming.disagreeing.insert(.w3c) }
        }
        return incoming
    }

    /// Clears every trace header this module owns, then writes `context` in each format.
    /// `sw8` is written only with an `origin` (SkyWalking's header names the calling service).
    @inlinable
    public static func inject(
        _ context: TraceContext, formats: [PropagationFormat], sw8 origin: Sw8Propagation.Origin? = nil, into headers: inout some HeaderCarrier
    ) {
        for name in ownedHeaders { headers.remove(name) }
        forEachHeader(context, formats: formats, sw8: origin) { headers.replace($0, with: $1) }
    }

    /// Every header `inject` writes, each once, in order, without clearing anything first: for a
    /// fresh header list that holds none of them, which can then simply append.
    @inlinable
    public static func forEachHeader(
        _ context: TraceContext, formats: [PropagationFormat], sw8 origin: Sw8Propagation.Origin? = nil, _ emit: (String, String) -> Void
    ) {
        var written: (w3c: Bool, multi: Bool, single: Bool, sw8: Bool) = (false, false, false, false)
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
            case .sw8 where !written.sw8:
                written.sw8 = true
                if let origin { emit(Sw8Propagation.header, Sw8Propagation.format(context, origin: origin)) }
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
