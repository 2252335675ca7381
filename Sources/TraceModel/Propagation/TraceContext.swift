/// What one hop knows about the trace it is part of: the ids to parent the next span on, the
/// sampling decision if one was made upstream, and vendor state to pass along untouched.
public struct TraceContext: Hashable, Sendable {
    public var traceID: TraceID
    /// The span that the next span should name as its parent.
    public var spanID: SpanID
    /// B3's parent id, kept only so a B3 hop can echo it; W3C has no such field.
    public var parentSpanID: SpanID?
    /// nil when the upstream deferred the decision (B3 without `sampled`).
    public var sampled: Bool?
    /// B3 debug (`X-B3-Flags: 1` / `b3: …-d`): force sampling.
    public var debug: Bool
    /// W3C `tracestate`, passed on as received (normalized: one field, no optional whitespace,
    /// no empty members; see `W3CTraceState`).
    public var traceState: String?
    /// W3C Trace Context Level 2's random-trace-id flag (trace-flags bit 1): at least the
    /// right-most 7 bytes of the trace id are random. Set by whoever made the trace id (every id
    /// this project makes is 128 random bits) and passed on unchanged with it; B3 has no such bit.
    public var randomTraceID: Bool
    /// The SkyWalking trace id this trace arrived with (`sw8`), when it is not simply our id in
    /// hex and had to be hashed: written on unchanged, so SkyWalking agents downstream keep it.
    public var sw8TraceID: String?

    public init(
        traceID: TraceID, spanID: SpanID, parentSpanID: SpanID? = nil, sampled: Bool? = nil, debug: Bool = false, traceState: String? = nil,
        randomTraceID: Bool = false, sw8TraceID: String? = nil
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.sampled = sampled
        self.debug = debug
        self.traceState = traceState
        self.randomTraceID = randomTraceID
        self.sw8TraceID = sw8TraceID
    }

    /// The context a child span passes on: same trace, the child's span id, the parent's decision.
    public func child(spanID: SpanID, sampled: Bool) -> TraceContext {
        TraceContext(
            traceID: traceID, spanID: spanID, parentSpanID: self.spanID, sampled: sampled, debug: debug, traceState: traceState,
            randomTraceID: randomTraceID, sw8TraceID: sw8TraceID)
    }
}

/// The header formats the proxy can read and write.
public enum PropagationFormat: String, CaseIterable, Sendable, Hashable {
    case w3c
    case b3multi
    case b3single
    /// SkyWalking's `sw8` (read only when configured: otherwise it passes through untouched).
    case sw8

    /// Parses "w3c,b3multi,b3single,sw8"; nil when any name is unknown.
    public static func parseList(_ text: String) -> [PropagationFormat]? {
        var formats: [PropagationFormat] = []
        for part in text.split(separator: ",") {
            guard let format = PropagationFormat(rawValue: part.trimmingCharacters(in: " ").lowercased()) else { return nil }
            if !formats.contains(format) { formats.append(format) }
        }
        return formats.isEmpty ? nil : formats
    }
}

extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}
