import TraceModel

/// The spans of one trace waiting for a decision, and what is known about whether more are
/// coming. A trace is *complete* when its root span (no parent) is in, every span's parent is
/// in, and every CLIENT or PRODUCER span has met the SERVER or CONSUMER span it called: a
/// span is exported only once it has ended, so the root being in means the request is over,
/// and what may still be on its way is a callee's spans, which those two checks look for.
/// A call to something that reports no spans (an external API) keeps the trace waiting for
/// `decision_wait`; an INTERNAL span exported late, after the decision, follows it.
struct BufferedTrace<Instant: InstantProtocol>: Sendable where Instant.Duration == Duration {
    private struct SpanKey: Hashable {
        var id: SpanID
        var kind: SpanKind
    }

    private(set) var spans: [Span] = []
    let firstSeen: Instant
    /// Matches this trace's entry in the sampler's arrival order (an id can come back after
    /// its decision has been forgotten).
    let generation: UInt64
    private var seen = Set<SpanKey>()
    private var hasRoot = false
    /// Parent ids referenced but not yet seen, with how many spans name each.
    private var missingParents: [SpanID: Int] = [:]
    private var unansweredClients = Set<SpanID>()
    /// Span ids some SERVER/CONSUMER span named as its caller (or shared, Zipkin-style).
    private var answered = Set<SpanID>()
    private var ids = Set<SpanID>()

    init(firstSeen: Instant, generation: UInt64) {
        self.firstSeen = firstSeen
        self.generation = generation
    }

    var isComplete: Bool { hasRoot && missingParents.isEmpty && unansweredClients.isEmpty }

    /// Adds a span; false when the same span (id and kind) is already here, as when a sender
    /// retries a batch that was in fact accepted.
    @discardableResult
    mutating func add(_ span: Span) -> Bool {
        guard seen.insert(SpanKey(id: span.spanID, kind: span.kind)).inserted else { return false }
        spans.append(span)
        if ids.insert(span.spanID).inserted {
            missingParents.removeValue(forKey: span.spanID)
        }
        if let parent = span.parentSpanID {
            if !ids.contains(parent) { missingParents[parent, default: 0] += 1 }
        } else {
            hasRoot = true
        }
        switch span.kind {
        case .client, .producer:
            if !answered.contains(span.spanID) { unansweredClients.insert(span.spanID) }
        case .server, .consumer:
            let caller = span.shared ? span.spanID : span.parentSpanID
            if let caller {
                answered.insert(caller)
                unansweredClients.remove(caller)
            }
        case .internal, .unspecified:
            break
        }
        return true
    }
}
