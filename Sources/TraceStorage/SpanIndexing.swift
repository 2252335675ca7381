import TraceModel

/// Index fields and the in-Swift predicate shared by every backend, so they agree on semantics.
enum SpanIndexing {
    /// The remote service a span talks to: `remoteEndpoint.serviceName`, else the `peer.service` attribute.
    static func remoteServiceName(of span: Span) -> String? {
        if let name = span.remoteEndpoint?.serviceName, !name.isEmpty { return name }
        if let peer = span.attribute("peer.service")?.description, !peer.isEmpty { return peer }
        return nil
    }

    /// The order every store returns `spans(startedBetween:)` in: newest first, ties by trace id
    /// and then span id, so that two stores holding the same spans answer the same list (the
    /// conformance suite and the ClickHouse parity test compare them).
    static func newestFirst(_ a: Span, _ b: Span) -> Bool {
        if a.startTimeNanos != b.startTimeNanos { return a.startTimeNanos > b.startTimeNanos }
        if a.traceID != b.traceID { return a.traceID > b.traceID }
        return a.spanID.value > b.spanID.value
    }

    /// Criteria the SQL index columns can check (service, remote service, name, kind, time, duration).
    static func matchesIndexed(_ span: Span, _ q: TraceQuery) -> Bool {
        if let s = q.serviceName, span.serviceName != s { return false }
        if let op = q.operationName, span.name != op { return false }
        if let k = q.spanKind, span.kind != k { return false }
        if span.startTimeNanos < q.startTimeMinNanos || span.startTimeNanos > q.startTimeMaxNanos { return false }
        if let m = q.minDurationNanos, span.durationNanos < m { return false }
        if let m = q.maxDurationNanos, span.durationNanos > m { return false }
        if let r = q.remoteServiceName, remoteServiceName(of: span) != r { return false }
        return true
    }

    /// True when the query has criteria that need the full span (tags, annotation terms).
    static func needsPayload(_ q: TraceQuery) -> Bool {
        !q.tags.isEmpty || !q.annotationTerms.isEmpty
    }

    /// Tag and annotation-term criteria, all on this one span.
    static func matchesPayload(_ span: Span, _ q: TraceQuery) -> Bool {
        for (key, value) in q.tags where !hasTag(span, key: key, value: value) { return false }
        for term in q.annotationTerms where !hasTerm(span, term) { return false }
        return true
    }

    static func matches(_ span: Span, _ q: TraceQuery) -> Bool {
        matchesIndexed(span, q) && matchesPayload(span, q)
    }

    static func hasTag(_ span: Span, key: String, value: String) -> Bool {
        if key == "error" && value == "true" && span.isError { return true }
        for a in span.attributes where a.key == key && a.value.description == value { return true }
        for a in span.resource where a.key == key && a.value.description == value { return true }
        for e in span.events {
            for a in e.attributes where a.key == key && a.value.description == value { return true }
        }
        return false
    }

    static func hasTerm(_ span: Span, _ term: String) -> Bool {
        if span.events.contains(where: { $0.name == term }) { return true }
        if span.attributes.contains(where: { $0.key == term }) { return true }
        if span.resource.contains(where: { $0.key == term }) { return true }
        return false
    }

    /// Sort helper: by start time, keeping arrival order for ties.
    static func sortedByStart(_ spans: [Span]) -> [Span] {
        spans.enumerated().sorted { a, b in
            a.element.startTimeNanos != b.element.startTimeNanos
                ? a.element.startTimeNanos < b.element.startTimeNanos : a.offset < b.offset
        }.map(\.element)
    }
}
