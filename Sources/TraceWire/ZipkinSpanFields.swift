import TraceModel

/// A Zipkin v2 span's fields as a decoder reads them (JSON or proto3, in whatever order they
/// come), and the one way every Zipkin decoder turns them into a span: the local endpoint's
/// service name is the span's service (`unknown` without one), and an `error` tag is the error
/// status with its value as the message.
package struct ZipkinSpanFields {
    package var kind = SpanKind.unspecified
    package var name = ""
    package var local: Endpoint?
    package var remote: Endpoint?
    package var events: [SpanEvent] = []
    private(set) var tags: [Attribute] = []
    var errorMessage: String?
    package var debug = false
    package var shared = false
    /// Which common tag names (`CommonStrings.tagNames`, a bit each) are in `tags` already, and
    /// where the others sit: enough to find a repeated key without hashing every key.
    private var commonTagsSeen: UInt64 = 0
    private var otherTagPositions: [Int] = []

    package init() {}

    /// Zipkin's `tags` is a map, so a key that comes again replaces the value it had (in its
    /// first place), as protobuf's map parsing and Zipkin's and Jaeger's JSON readers do. An
    /// `error` tag is also the span's error status.
    package mutating func addTag(_ key: consuming String, _ value: consuming String, common: Int?) {
        if tags.isEmpty { tags.reserveCapacity(32) }  // a sidecar span's ~30 tags at once, not six doublings
        if key.utf8.count == 5, key == "error" { errorMessage = value }
        if let common, common < UInt64.bitWidth {
            let bit = UInt64(1) << UInt64(common)
            if commonTagsSeen & bit != 0, let at = tags.firstIndex(where: { $0.key == key }) {
                tags[at].value = .string(value)
                return
            }
            commonTagsSeen |= bit
        } else {
            for at in otherTagPositions where tags[at].key == key {
                tags[at].value = .string(value)
                return
            }
            otherTagPositions.append(tags.count)
        }
        tags.append(Attribute(key, .string(value)))
    }

    /// Gives back the room reserved for tags when far fewer came: stored spans keep this array.
    mutating func trimTags() {
        if tags.capacity > 2 * tags.count + 8 { tags = Array(tags[...]) }
    }

    package consuming func span(traceID: TraceID, spanID: SpanID, parent: SpanID?, startNanos: UInt64, durationNanos: UInt64) -> Span {
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
