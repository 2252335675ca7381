import TraceModel

/// Zipkin v2 JSON (`POST /api/v2/spans`, `GET /api/v2/trace/{id}`): a list of spans.
public enum ZipkinJSON {
    /// Decodes a JSON list of v2 spans. As Zipkin does, one bad span rejects the whole body:
    /// the error names it (`spans[3].traceId: ...`). An empty body or `[]` is zero spans.
    public static func decode(_ body: [UInt8], limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        var r = JSONReader(body, maxDepth: limits.maxJSONDepth)
        if r.isAtEnd() { return DecodedBatch() }
        guard try r.peek() == .array else {
            let token = try r.peek()
            if token == .object { throw WireError("Expected a JSON_V2 encoded list, but received: an object") }
            throw WireError("Expected a JSON_V2 encoded list")
        }
        var limiter = ValueLimiter(limits)
        var repeated = RepeatedTagValues()
        var spans = [Span]()
        try r.beginArray()
        var index = 0
        while try r.nextElement() {
            spans.append(try decodeSpan(&r, index: index, limiter: &limiter, repeated: &repeated))
            index += 1
        }
        try r.expectEnd()
        return DecodedBatch(spans: spans, rejected: [], truncatedValues: limiter.truncated)
    }

    private static let v1Error = WireError("Expected a JSON_V2 encoded list, but received: JSON_V1")

    private static func decodeSpan(
        _ r: inout JSONReader, index: Int, limiter: inout ValueLimiter, repeated: inout RepeatedTagValues
    ) throws(WireError) -> Span {
        var field = ""
        do {
            return try decodeSpanFields(&r, field: &field, limiter: &limiter, repeated: &repeated)
        } catch {
            if error.message == v1Error.message { throw error }
            throw error.prefixed(field.isEmpty ? "spans[\(index)]" : "spans[\(index)].\(field)")
        }
    }

    private static func decodeSpanFields(
        _ r: inout JSONReader, field: inout String, limiter: inout ValueLimiter, repeated: inout RepeatedTagValues
    ) throws(WireError) -> Span {
        guard try r.peek() == .object else { throw WireError("expected a span object") }
        try r.beginObject()
        var traceID: TraceID?
        var spanID: SpanID?
        var parentID: SpanID?
        var timestamp: UInt64 = 0
        var duration: UInt64 = 0
        var fields = ZipkinSpanFields()

        while let rawKey = try r.nextRawKey() {
            let member = SpanMember(rawKey)
            field = member == .other ? String(decoding: rawKey, as: UTF8.self) : member.name
            if r.consumeNull() { continue }
            switch member {
            case .traceID:
                let raw = try r.readRawString()
                guard raw.count == 16 || raw.count == 32, let id = TraceIDParse.hex(raw) else {
                    throw WireError("must be 16 or 32 hex characters, got \(quotedForError(raw))")
                }
                guard id.isValid else { throw WireError("all-zero trace id is invalid") }
                traceID = id
            case .id:
                spanID = try readSpanID(&r, allowZero: false)
            case .parentID:
                parentID = try readSpanID(&r, allowZero: true)  // Zipkin reads an all-zero parent as "no parent"
            case .kind:
                let k = try r.readString()
                switch k {
                case "CLIENT", "client": fields.kind = .client
                case "SERVER", "server": fields.kind = .server
                case "PRODUCER", "producer": fields.kind = .producer
                case "CONSUMER", "consumer": fields.kind = .consumer
                // Zipkin refuses a kind outside its enum (Span.Kind.valueOf), and so does its spec.
                default: throw WireError("must be CLIENT, SERVER, PRODUCER or CONSUMER, got \(quotedForError(k))")
                }
            case .name:
                fields.name = try r.readString()
            case .timestamp:
                timestamp = try readMicros(&r)
            case .duration:
                duration = try readMicros(&r)
            case .localEndpoint:
                fields.local = try readEndpoint(&r)
            case .remoteEndpoint:
                fields.remote = try readEndpoint(&r)
            case .annotations:
                try r.beginArray()
                var n = 0
                while try r.nextElement() {
                    field = "annotations[\(n)]"
                    fields.events.append(try readAnnotation(&r))
                    n += 1
                }
            case .tags:
                guard try r.peek() == .object else { throw WireError("expected an object of string values") }
                try r.beginObject()
                while let rawTagKey = try r.nextRawKey() {
                    let (tagKey, common) = CommonStrings.tagName(rawTagKey)
                    let value: String
                    switch try r.peek() {
                    case .string:
                        let raw = try r.readRawString()
                        guard let common else {
                            value = String(decoding: raw, as: UTF8.self)
                            break
                        }
                        if let same = repeated.value(forTag: common, raw) {
                            value = same  // already within the limit: only such values are remembered
                        } else {
                            value = String(decoding: raw, as: UTF8.self)
                            if value.utf8.count <= limiter.maxBytes { repeated.remember(value, forTag: common) }
                        }
                    case .number: value = String(decoding: try r.readRawNumber().text, as: UTF8.self)
                    case .bool: value = try r.readBool() ? "true" : "false"
                    case .null:
                        try r.readNull()
                        continue
                    case .object, .array:
                        field = "tags.\(tagKey)"
                        throw WireError("tag values must be strings")
                    }
                    fields.addTag(tagKey, limiter.limit(value), common: common)
                }
                fields.trimTags()
            case .debug:
                fields.debug = try r.readBool()
            case .shared:
                fields.shared = try r.readBool()
            case .binaryAnnotations:
                throw v1Error
            case .other:
                try r.skipValue()
            }
        }
        field = ""
        guard let traceID else { field = "traceId"; throw WireError("required") }
        guard let spanID else { field = "id"; throw WireError("required") }

        return fields.span(traceID: traceID, spanID: spanID, parent: parentID, startNanos: timestamp, durationNanos: duration)
    }

    /// A span object's member, recognized from the key's bytes: no String is built for the
    /// dozen keys of every span (the name only becomes a String for unknown members, and then
    /// only for error messages).
    enum SpanMember: CaseIterable, Sendable {
        case traceID, id, parentID, kind, name, timestamp, duration, localEndpoint, remoteEndpoint
        case annotations, tags, debug, shared, binaryAnnotations, other

        private static let table = ByteKeyTable(allCases.filter { $0 != .other }.map { ($0.name, $0) })

        init(_ raw: ArraySlice<UInt8>) {
            self = Self.table.lookup(raw) ?? .other
        }

        /// The member's JSON name (a literal: assigning it allocates nothing).
        var name: String {
            switch self {
            case .traceID: return "traceId"
            case .id: return "id"
            case .parentID: return "parentId"
            case .kind: return "kind"
            case .name: return "name"
            case .timestamp: return "timestamp"
            case .duration: return "duration"
            case .localEndpoint: return "localEndpoint"
            case .remoteEndpoint: return "remoteEndpoint"
            case .annotations: return "annotations"
            case .tags: return "tags"
            case .debug: return "debug"
            case .shared: return "shared"
            case .binaryAnnotations: return "binaryAnnotations"
            case .other: return ""
            }
        }
    }

    private static func readSpanID(_ r: inout JSONReader, allowZero: Bool) throws(WireError) -> SpanID? {
        let raw = try r.readRawString()
        guard raw.count == 16, let v = Hex.parseUInt64(raw) else {
            throw WireError("must be 16 hex characters, got \(quotedForError(raw))")
        }
        guard let id = SpanID(v) else {
            if allowZero { return nil }
            throw WireError("all-zero span id is invalid")
        }
        return id
    }

    /// Microseconds (a non-negative integer) as nanoseconds.
    private static func readMicros(_ r: inout JSONReader) throws(WireError) -> UInt64 {
        let v = try r.readInt64()
        guard v >= 0 else { throw WireError("must not be negative, got \(v)") }
        guard let nanos = Micros.toNanos(UInt64(v)) else { throw WireError("out of range, got \(v)") }
        return nanos
    }

    private static func readEndpoint(_ r: inout JSONReader) throws(WireError) -> Endpoint? {
        guard try r.peek() == .object else { throw WireError("expected an endpoint object") }
        try r.beginObject()
        var e = Endpoint()
        while let key = try r.nextRawKey() {
            if r.consumeNull() { continue }
            switch EndpointMember.table.lookup(key) {
            case .serviceName?:
                let s = try r.readString()
                e.serviceName = s.isEmpty ? nil : s
            case .ipv4?:
                let s = try r.readString()
                e.ipv4 = s.isEmpty ? nil : s
            case .ipv6?:
                let s = try r.readString()
                e.ipv6 = s.isEmpty ? nil : s
            case .port?:
                let p = try r.readInt64()
                e.port = (1...65535).contains(p) ? Int(p) : nil
            case nil:
                try r.skipValue()
            }
        }
        return e.isEmpty ? nil : e
    }

    /// An endpoint object's members, recognized from the key's bytes.
    private enum EndpointMember: Sendable {
        case serviceName, ipv4, ipv6, port

        static let table = ByteKeyTable([("serviceName", Self.serviceName), ("ipv4", .ipv4), ("ipv6", .ipv6), ("port", .port)])
    }

    private static func readAnnotation(_ r: inout JSONReader) throws(WireError) -> SpanEvent {
        guard try r.peek() == .object else { throw WireError("expected an annotation object") }
        try r.beginObject()
        var ts: UInt64?
        var value: String?
        while let key = try r.nextKey() {
            if r.consumeNull() { continue }
            switch key {
            case "timestamp": ts = try readMicros(&r)
            case "value": value = try r.readString()
            case "endpoint": throw v1Error  // v1 annotations carry their own endpoint
            default: try r.skipValue()
            }
        }
        guard let ts else { throw WireError("timestamp is required") }
        guard let value else { throw WireError("value is required") }
        return event(timeNanos: ts, annotation: value)
    }

    /// Reverses `annotationValue`: OpenTelemetry's Zipkin exporters write an event with
    /// attributes as the annotation `{"name":{"key":value,...}}`. Anything else is a plain name.
    package static func event(timeNanos: UInt64, annotation value: String) -> SpanEvent {
        guard value.utf8.first == UInt8(ascii: "{"), value.utf8.last == UInt8(ascii: "}"),
              let parsed = try? JSONParser.parse(Array(value.utf8), maxDepth: 8),
              case .object(let members) = parsed, members.count == 1,
              case .object(let fields) = members[0].value
        else { return SpanEvent(timeNanos: timeNanos, name: value) }
        return SpanEvent(timeNanos: timeNanos, name: members[0].key, attributes: fields.compactMap { key, v in
            attribute(from: v).map { Attribute(key, $0) }
        })
    }

    private static func attribute(from value: JSONValue) -> AttributeValue? {
        switch value {
        case .string(let s): return .string(s)
        case .bool(let b): return .bool(b)
        case .number:
            if let i = value.int64Value { return .int(i) }
            return value.doubleValue.map { .double($0) }
        case .array(let items): return .array(items.compactMap(attribute(from:)))
        case .null, .object: return nil
        }
    }

    // MARK: - Encoding

    /// A JSON array of v2 spans, fields in Zipkin's V2SpanWriter order, empty fields left out.
    public static func encode(_ spans: [Span]) -> [UInt8] {
        var w = JSONWriter(capacity: spans.count * 400 + 2)
        write(spans, to: &w)
        return w.bytes
    }

    /// A list of traces: `[[span, ...], [span, ...]]` (`GET /api/v2/traces`).
    public static func encode(traces: [[Span]]) -> [UInt8] {
        var w = JSONWriter(capacity: traces.reduce(2) { $0 + $1.count * 400 + 2 })
        w.beginArray()
        for t in traces { write(t, to: &w) }
        w.endArray()
        return w.bytes
    }

    /// Writes `[span, ...]` into an existing writer.
    public static func write(_ spans: [Span], to w: inout JSONWriter) {
        w.beginArray()
        for s in spans { write(s, to: &w) }
        w.endArray()
    }

    /// Writes one span object into an existing writer.
    public static func write(_ span: Span, to w: inout JSONWriter) {
        w.beginObject()
        w.member("traceId", span.traceID.hex)
        if let p = span.parentSpanID { w.member("parentId", p.hex) }
        w.member("id", span.spanID.hex)
        if let k = span.kind.zipkinName { w.member("kind", k) }
        if !span.name.isEmpty { w.member("name", span.name) }
        if span.startTimeNanos > 0 { w.member("timestamp", Micros.floor(span.startTimeNanos)) }
        if span.durationNanos > 0 { w.member("duration", Micros.ceil(span.durationNanos)) }

        var local = span.localEndpoint ?? Endpoint()
        local.serviceName = span.serviceName.isEmpty ? nil : span.serviceName
        if !local.isEmpty {
            w.key("localEndpoint")
            writeEndpoint(local, to: &w)
        }
        if let remote = span.remoteEndpoint, !remote.isEmpty {
            w.key("remoteEndpoint")
            writeEndpoint(remote, to: &w)
        }
        if !span.events.isEmpty {
            w.key("annotations")
            w.beginArray()
            for e in span.events {
                w.beginObject()
                w.member("timestamp", Micros.floor(e.timeNanos))
                w.member("value", annotationValue(e))
                w.endObject()
            }
            w.endArray()
        }
        let hasErrorTag = span.attributes.contains { $0.key == "error" }
        let addStatus = span.status.code == .error && !hasErrorTag
        if !span.attributes.isEmpty || addStatus {
            w.key("tags")
            w.beginObject()
            for a in span.attributes { w.member(a.key, a.value.description) }
            if addStatus {
                if span.attribute("otel.status_code") == nil { w.member("otel.status_code", "ERROR") }
                w.member("error", span.status.message ?? "")
            }
            w.endObject()
        }
        if span.debug { w.member("debug", true) }
        if span.shared { w.member("shared", true) }
        w.endObject()
    }

    private static func writeEndpoint(_ e: Endpoint, to w: inout JSONWriter) {
        w.beginObject()
        if let s = e.serviceName { w.member("serviceName", s) }
        if let s = e.ipv4 { w.member("ipv4", s) }
        if let s = e.ipv6 { w.member("ipv6", s) }
        if let p = e.port, p > 0 { w.member("port", p) }
        w.endObject()
    }

    /// An event with attributes becomes `{"name":{attrs}}`, as OpenTelemetry's Zipkin exporter writes it.
    public static func annotationValue(_ e: SpanEvent) -> String {
        guard !e.attributes.isEmpty else { return e.name }
        var w = JSONWriter()
        w.beginObject()
        w.key(e.name)
        w.beginObject()
        for a in e.attributes {
            w.key(a.key)
            w.append(attributeValue: a.value)
        }
        w.endObject()
        w.endObject()
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

/// Trace ids from raw bytes without allocating a String.
package enum TraceIDParse {
    /// 16 or 32 hex digits; returns the id even when all-zero (callers report that separately).
    static func hex(_ raw: ArraySlice<UInt8>) -> TraceID? {
        let s = raw.startIndex
        switch raw.count {
        case 16:
            guard let low = Hex.parseUInt64(raw) else { return nil }
            return TraceID(high: 0, low: low)
        case 32:
            guard let high = Hex.parseUInt64(raw[s..<s + 16]), let low = Hex.parseUInt64(raw[(s + 16)...]) else { return nil }
            return TraceID(high: high, low: low)
        default:
            return nil
        }
    }

    /// 8 or 16 big-endian bytes (even when all-zero).
    package static func bytes<C: Collection>(_ b: C) -> TraceID? where C.Element == UInt8 {
        guard b.count == 16 || b.count == 8 else { return nil }
        var high: UInt64 = 0, low: UInt64 = 0
        var i = 0
        for x in b {
            if b.count == 16 && i < 8 { high = high << 8 | UInt64(x) } else { low = low << 8 | UInt64(x) }
            i += 1
        }
        return TraceID(high: high, low: low)
    }

    package static func spanValue<C: Collection>(_ b: C) -> UInt64? where C.Element == UInt8 {
        guard b.count == 8 else { return nil }
        var v: UInt64 = 0
        for x in b { v = v << 8 | UInt64(x) }
        return v
    }
}
