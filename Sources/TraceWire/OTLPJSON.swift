import TraceModel

/// OTLP/HTTP JSON (`application/json` on `/v1/traces`): the proto3 JSON mapping with OTLP's deviations
/// (hex ids, integer enums, 64-bit integers as strings). Lenient where exporters differ: base64 ids,
/// numbers for 64-bit fields, enum names, snake_case field names.
public enum OTLPJSON {
    /// Malformed JSON, or a field of the wrong JSON type, throws (naming the path). A span with bad ids or
    /// times is dropped and listed in `rejected`; the other spans are kept.
    public static func decode(_ body: [UInt8], limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        var d = Decoder(reader: JSONReader(body, maxDepth: limits.maxJSONDepth), limiter: ValueLimiter(limits))
        try d.decodeRequest()
        d.batch.truncatedValues = d.limiter.truncated
        return d.batch
    }

    struct Decoder {
        var reader: JSONReader
        var limiter: ValueLimiter
        var batch = DecodedBatch()
        /// Dotted path of the value being read, for error messages.
        var path = ""

        init(reader: JSONReader, limiter: ValueLimiter) {
            self.reader = reader
            self.limiter = limiter
        }

        func fail(_ message: String) -> WireError {
            WireError(path.isEmpty ? message : path + ": " + message)
        }

        mutating func expect(_ token: JSONReader.Token, _ what: String) throws(WireError) {
            guard try reader.peek() == token else { throw fail("expected \(what)") }
        }

        mutating func decodeRequest() throws(WireError) {
            if reader.isAtEnd() { return }
            try expect(.object, "an ExportTraceServiceRequest object")
            try reader.beginObject()
            while let key = try reader.nextKey() {
                if reader.consumeNull() { continue }
                switch key {
                case "resourceSpans", "resource_spans":
                    try expect(.array, "an array")
                    try reader.beginArray()
                    var ri = 0
                    while try reader.nextElement() {
                        try decodeResourceSpans(ri)
                        ri += 1
                    }
                default:
                    try reader.skipValue()
                }
            }
            try reader.expectEnd()
        }

        mutating func decodeResourceSpans(_ ri: Int) throws(WireError) {
            let base = "resourceSpans[\(ri)]"
            path = base
            if reader.consumeNull() { return }
            try expect(.object, "an object")
            try reader.beginObject()
            let first = batch.spans.count
            var serviceName = OTLP.defaultServiceName
            var resource = [Attribute]()
            var si = 0
            while let key = try reader.nextKey() {
                path = base + "." + key
                if reader.consumeNull() { continue }
                switch key {
                case "resource":
                    try expect(.object, "an object")
                    try reader.beginObject()
                    while let rk = try reader.nextKey() {
                        path = base + ".resource." + rk
                        if reader.consumeNull() { continue }
                        if rk == "attributes" {
                            for a in try readAttributes() {
                                if a.key == "service.name" {
                                    if case .string(let s) = a.value, !s.isEmpty { serviceName = s }
                                } else {
                                    resource.append(a)
                                }
                            }
                        } else {
                            try reader.skipValue()
                        }
                    }
                case "scopeSpans", "scope_spans", "instrumentationLibrarySpans":
                    try expect(.array, "an array")
                    try reader.beginArray()
                    while try reader.nextElement() {
                        try decodeScopeSpans(base + ".scopeSpans[\(si)]", ri: ri, si: si)
                        si += 1
                    }
                default:
                    try reader.skipValue()
                }
            }
            // `resource` may come after `scopeSpans`: fill it in once the object is done.
            for i in first..<batch.spans.count {
                batch.spans[i].serviceName = serviceName
                batch.spans[i].resource = resource
            }
        }

        mutating func decodeScopeSpans(_ base: String, ri: Int, si: Int) throws(WireError) {
            path = base
            if reader.consumeNull() { return }
            try expect(.object, "an object")
            try reader.beginObject()
            let first = batch.spans.count
            var scope: InstrumentationScope?
            var ki = 0
            while let key = try reader.nextKey() {
                path = base + "." + key
                if reader.consumeNull() { continue }
                switch key {
                case "scope", "instrumentationLibrary":
                    try expect(.object, "an object")
                    try reader.beginObject()
                    var name = "", version = ""
                    while let sk = try reader.nextKey() {
                        path = base + ".scope." + sk
                        if reader.consumeNull() { continue }
                        switch sk {
                        case "name": name = try readString()
                        case "version": version = try readString()
                        default: try reader.skipValue()
                        }
                    }
                    if !name.isEmpty || !version.isEmpty {
                        scope = InstrumentationScope(name: name, version: version.isEmpty ? nil : version)
                    }
                case "spans":
                    try expect(.array, "an array")
                    try reader.beginArray()
                    while try reader.nextElement() {
                        let location = OTLP.location(ri, si, ki)
                        path = location
                        switch try decodeSpan(location) {
                        case .success(let span): batch.spans.append(span)
                        case .failure(let rejection):
                            batch.rejected.append(SpanRejection(location: location, reason: rejection.reason))
                        }
                        ki += 1
                    }
                default:
                    try reader.skipValue()
                }
            }
            if let scope {
                for i in first..<batch.spans.count { batch.spans[i].scope = scope }
            }
        }

        /// Syntax and type errors throw; id/time problems come back as a rejection after the whole
        /// span object has been consumed, so decoding carries on with the next span.
        mutating func decodeSpan(_ base: String) throws(WireError) -> Result<Span, OTLP.Rejection> {
            try expect(.object, "a span object")
            try reader.beginObject()
            var traceID: ArraySlice<UInt8>?
            var spanID: ArraySlice<UInt8>?
            var parentID: ArraySlice<UInt8>?
            var traceState: String?
            var name = ""
            var kind = SpanKind.unspecified
            var start: UInt64 = 0
            var end: UInt64 = 0
            var attributes = [Attribute]()
            var events = [SpanEvent]()
            var links = [SpanLink]()
            var status = SpanStatus.unset
            while let key = try reader.nextKey() {
                path = base + "." + key
                if reader.consumeNull() { continue }
                switch key {
                case "traceId", "trace_id": traceID = try readRawString()
                case "spanId", "span_id": spanID = try readRawString()
                case "parentSpanId", "parent_span_id": parentID = try readRawString()
                case "traceState", "trace_state":
                    let s = try readString()
                    traceState = s.isEmpty ? nil : s
                case "name": name = try readString()
                case "kind": kind = try readEnum(OTLP.kind(_:), OTLP.kind(name:))
                case "startTimeUnixNano", "start_time_unix_nano": start = try readUInt64()
                case "endTimeUnixNano", "end_time_unix_nano": end = try readUInt64()
                case "attributes": attributes = try readAttributes()
                case "events":
                    try expect(.array, "an array")
                    try reader.beginArray()
                    var n = 0
                    while try reader.nextElement() {
                        path = base + ".events[\(n)]"
                        events.append(try readEvent())
                        n += 1
                    }
                case "links":
                    try expect(.array, "an array")
                    try reader.beginArray()
                    var n = 0
                    while try reader.nextElement() {
                        path = base + ".links[\(n)]"
                        if let link = try readLink() { links.append(link) }
                        n += 1
                    }
                case "status":
                    try expect(.object, "an object")
                    try reader.beginObject()
                    while let sk = try reader.nextKey() {
                        path = base + ".status." + sk
                        if reader.consumeNull() { continue }
                        switch sk {
                        case "code": status.code = try readEnum(OTLP.statusCode(_:), OTLP.statusCode(name:))
                        case "message":
                            let m = try readString()
                            status.message = m.isEmpty ? nil : m
                        default: try reader.skipValue()
                        }
                    }
                default:
                    try reader.skipValue()
                }
            }
            do throws(OTLP.Rejection) {
                guard let traceID else { throw OTLP.Rejection("traceId: missing") }
                guard let spanID else { throw OTLP.Rejection("spanId: missing") }
                let t = try OTLP.traceID(try OTLPJSON.idBytes(traceID, count: 16, field: "traceId"))
                let s = try OTLP.spanID(try OTLPJSON.idBytes(spanID, count: 8, field: "spanId"))
                var p: SpanID?
                if let parentID, !parentID.isEmpty {
                    p = try OTLP.parentID(try OTLPJSON.idBytes(parentID, count: 8, field: "parentSpanId"))
                }
                let duration = try OTLP.duration(start: start, end: end)
                return .success(Span(
                    traceID: t, spanID: s, parentSpanID: p, kind: kind, name: name,
                    startTimeNanos: start, durationNanos: duration, serviceName: OTLP.defaultServiceName,
                    attributes: attributes, events: events, links: links, status: status,
                    remoteEndpoint: OTLP.remoteEndpoint(attributes), traceState: traceState))
            } catch {
                return .failure(error)
            }
        }

        mutating func readEvent() throws(WireError) -> SpanEvent {
            try expect(.object, "an event object")
            let base = path
            try reader.beginObject()
            var e = SpanEvent(timeNanos: 0, name: "")
            while let key = try reader.nextKey() {
                path = base + "." + key
                if reader.consumeNull() { continue }
                switch key {
                case "timeUnixNano", "time_unix_nano": e.timeNanos = try readUInt64()
                case "name": e.name = try readString()
                case "attributes": e.attributes = try readAttributes()
                default: try reader.skipValue()
                }
            }
            return e
        }

        /// A link with bad ids is dropped on its own.
        mutating func readLink() throws(WireError) -> SpanLink? {
            try expect(.object, "a link object")
            let base = path
            try reader.beginObject()
            var traceID: ArraySlice<UInt8> = []
            var spanID: ArraySlice<UInt8> = []
            var traceState: String?
            var attributes = [Attribute]()
            while let key = try reader.nextKey() {
                path = base + "." + key
                if reader.consumeNull() { continue }
                switch key {
                case "traceId", "trace_id": traceID = try readRawString()
                case "spanId", "span_id": spanID = try readRawString()
                case "traceState", "trace_state":
                    let s = try readString()
                    traceState = s.isEmpty ? nil : s
                case "attributes": attributes = try readAttributes()
                default: try reader.skipValue()
                }
            }
            guard let tb = try? OTLPJSON.idBytes(traceID, count: 16, field: "traceId"), let t = try? OTLP.traceID(tb),
                let sb = try? OTLPJSON.idBytes(spanID, count: 8, field: "spanId"), let s = try? OTLP.spanID(sb)
            else { return nil }
            return SpanLink(traceID: t, spanID: s, traceState: traceState, attributes: attributes)
        }
    }

    /// OTLP JSON ids are hex; some exporters send proto3-JSON base64 instead (16 bytes: 24 chars).
    static func idBytes(_ raw: ArraySlice<UInt8>, count: Int, field: String) throws(OTLP.Rejection) -> [UInt8] {
        if raw.count == count * 2, let b = hexBytes(raw) { return b }
        if raw.count == (count + 2) / 3 * 4 || raw.count == (count * 4 + 2) / 3,
            let b = Base64.decode(String(decoding: raw, as: UTF8.self)), b.count == count
        {
            return b
        }
        if let b = hexBytes(raw) { return b }  // hex of the wrong length: the caller reports the length
        throw OTLP.Rejection("\(field): must be \(count * 2) hex characters (or base64 of \(count) bytes), got \(quotedForError(raw))")
    }

    static func hexBytes(_ raw: ArraySlice<UInt8>) -> [UInt8]? {
        guard raw.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(raw.count / 2)
        var i = raw.startIndex
        while i < raw.endIndex {
            guard let hi = Hex.parseUInt64(raw[i..<i + 1]), let lo = Hex.parseUInt64(raw[i + 1..<i + 2]) else { return nil }
            out.append(UInt8(hi << 4 | lo))
            i += 2
        }
        return out
    }
}
