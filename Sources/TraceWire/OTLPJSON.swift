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

        // MARK: Attributes

        /// `[{"key": k, "value": AnyValue}, ...]`, string values truncated to the limit.
        mutating func readAttributes() throws(WireError) -> [Attribute] {
            try expect(.array, "an array of key/value objects")
            let base = path
            try reader.beginArray()
            var out = [Attribute]()
            var n = 0
            while try reader.nextElement() {
                path = base + "[\(n)]"
                n += 1
                guard let (key, value) = try readKeyValue() else { continue }
                out.append(Attribute(key, limiter.limit(value.attributeValue)))
            }
            return out
        }

        mutating func readKeyValue() throws(WireError) -> (String, AnyJSON)? {
            if reader.consumeNull() { return nil }
            try expect(.object, "a key/value object")
            let base = path
            try reader.beginObject()
            var key = ""
            var value = AnyJSON.empty
            while let k = try reader.nextKey() {
                path = base + "." + k
                if reader.consumeNull() { continue }
                switch k {
                case "key": key = try readString()
                case "value": value = try readAnyValue()
                default: try reader.skipValue()
                }
            }
            return (key, value)
        }

        mutating func readAnyValue() throws(WireError) -> AnyJSON {
            try expect(.object, "an AnyValue object")
            let base = path
            try reader.beginObject()
            var value = AnyJSON.empty
            while let k = try reader.nextKey() {
                path = base + "." + k
                if reader.consumeNull() { continue }
                switch k {
                case "stringValue", "string_value": value = .value(.string(try readString()))
                case "boolValue", "bool_value":
                    guard try reader.peek() == .bool else { throw fail("expected true or false") }
                    value = .value(.bool(try reader.readBool()))
                case "intValue", "int_value": value = .value(.int(try readInt64()))
                case "doubleValue", "double_value": value = .value(.double(try readDouble()))
                case "bytesValue", "bytes_value":
                    let s = try readString()
                    guard let b = Base64.decode(s) else { throw fail("expected base64, got \(quotedForError(s))") }
                    value = .value(.bytes(b))
                case "arrayValue", "array_value":
                    value = .array(try readValues())
                case "kvlistValue", "kvlist_value":
                    try expect(.object, "an object")
                    try reader.beginObject()
                    var members = [(String, AnyJSON)]()
                    let kvBase = path
                    while let vk = try reader.nextKey() {
                        path = kvBase + "." + vk
                        if reader.consumeNull() { continue }
                        if vk == "values" {
                            try expect(.array, "an array")
                            try reader.beginArray()
                            let vBase = path
                            var n = 0
                            while try reader.nextElement() {
                                path = vBase + "[\(n)]"
                                n += 1
                                if let kv = try readKeyValue() { members.append(kv) }
                            }
                        } else {
                            try reader.skipValue()
                        }
                    }
                    value = .kvlist(members)
                default:
                    try reader.skipValue()
                }
            }
            return value
        }

        /// `{"values": [AnyValue, ...]}`
        mutating func readValues() throws(WireError) -> [AnyJSON] {
            try expect(.object, "an object")
            let base = path
            try reader.beginObject()
            var out = [AnyJSON]()
            while let k = try reader.nextKey() {
                path = base + "." + k
                if reader.consumeNull() { continue }
                if k == "values" {
                    try expect(.array, "an array")
                    try reader.beginArray()
                    let vBase = path
                    var n = 0
                    while try reader.nextElement() {
                        path = vBase + "[\(n)]"
                        n += 1
                        if reader.consumeNull() { out.append(.empty); continue }
                        out.append(try readAnyValue())
                    }
                } else {
                    try reader.skipValue()
                }
            }
            return out
        }

        // MARK: Scalars (wrong JSON type: throw with the path)

        mutating func readString() throws(WireError) -> String {
            guard try reader.peek() == .string else { throw fail("expected a string") }
            return try reader.readString()
        }

        mutating func readRawString() throws(WireError) -> ArraySlice<UInt8> {
            guard try reader.peek() == .string else { throw fail("expected a string") }
            return try reader.readRawString()
        }

        /// 64-bit integers: a decimal string (as OTLP specifies) or a JSON number.
        mutating func readUInt64() throws(WireError) -> UInt64 {
            switch try reader.peek() {
            case .number:
                do { return try reader.readUInt64() } catch { throw fail("expected an unsigned 64-bit integer") }
            case .string:
                let raw = try reader.readRawString()
                guard let v = JSONNumbers.uint64(string: raw) else {
                    throw fail("expected an unsigned 64-bit integer, got \(quotedForError(raw))")
                }
                return v
            default:
                throw fail("expected an unsigned 64-bit integer")
            }
        }

        mutating func readInt64() throws(WireError) -> Int64 {
            switch try reader.peek() {
            case .number:
                do { return try reader.readInt64() } catch { throw fail("expected a 64-bit integer") }
            case .string:
                let raw = try reader.readRawString()
                guard let v = JSONNumbers.int64(string: raw) else { throw fail("expected a 64-bit integer, got \(quotedForError(raw))") }
                return v
            default:
                throw fail("expected a 64-bit integer")
            }
        }

        mutating func readDouble() throws(WireError) -> Double {
            switch try reader.peek() {
            case .number:
                return try reader.readDouble()
            case .string:
                let s = try reader.readString()
                switch s {
                case "NaN": return .nan
                case "Infinity": return .infinity
                case "-Infinity": return -.infinity
                default:
                    guard let d = Double(s) else { throw fail("expected a number, got \(quotedForError(s))") }
                    return d
                }
            default:
                throw fail("expected a number")
            }
        }

        /// OTLP requires integer enums; names are accepted too.
        mutating func readEnum<E>(_ fromInt: (Int) -> E, _ fromName: (String) -> E) throws(WireError) -> E {
            switch try reader.peek() {
            case .number:
                let v: Int64
                do { v = try reader.readInt64() } catch { throw fail("expected an enum integer") }
                return fromInt(Int(clamping: v))
            case .string:
                return fromName(try reader.readString())
            default:
                throw fail("expected an enum integer")
            }
        }
    }

    /// A parsed AnyValue: kvlists are kept until the end so they can be rendered as one JSON string.
    indirect enum AnyJSON {
        case empty
        case value(AttributeValue)
        case array([AnyJSON])
        case kvlist([(String, AnyJSON)])

        var attributeValue: AttributeValue {
            switch self {
            case .empty: return .string("")
            case .value(let v): return v
            case .array(let xs): return .array(xs.map(\.attributeValue))
            case .kvlist:
                var w = JSONWriter()
                write(&w)
                return .string(String(decoding: w.bytes, as: UTF8.self))
            }
        }

        func write(_ w: inout JSONWriter) {
            switch self {
            case .empty: w.appendNull()
            case .value(let v): w.append(attributeValue: v)
            case .array(let xs):
                w.beginArray()
                for x in xs { x.write(&w) }
                w.endArray()
            case .kvlist(let members):
                w.beginObject()
                for (k, v) in members {
                    w.key(k)
                    v.write(&w)
                }
                w.endObject()
            }
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
