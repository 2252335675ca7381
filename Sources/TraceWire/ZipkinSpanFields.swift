import TraceModel

/// A Zipkin v2 span's fields as a decoder reads them (JSON or proto3, in whatever order they
/// come), and the one way every Zipkin decoder turns them into a span: the local endpoint's
/// service name is the span's service (`unknown` without one), and an `error` tag is the error
/// status with its value as the message.
struct ZipkinSpanFields {
    var kind = SpanKind.unspecified
    var name = ""
    var local: Endpoint?
    var remote: Endpoint?
    var events: [SpanEvent] = []
    var tags: [Attribute] = []
    var errorMessage: String?
    var debug = false
    var shared = false

    consuming func span(traceID: TraceID, spanID: SpanID, parent: SpanID?, startNanos: UInt64, durationNanos: UInt64) -> Span {
        var serviceName = "unknown"
        if let s = local?.serviceName, !s.isEmpty { serviceName = s }
        local?.serviceName = nil
        if local?.isEmpty == true { local = nil }
        return Span(
            traceID: traceID, spanID: spanID, parentSpanID: parent, kind: kind, name: name,
            startTimeNanos: startNanos, durationNanos: durationNanos, serviceName: serviceName,
            attributes: tags, events: events, status: errorMessage.map { SpanStatus.error($0) } ?? .unset,
            localEndpoint: local, remoteEndpoint: remote, debug: debug, shared: shared)
    }
}
