import TraceModel

/// OTLP/HTTP JSON written by us: spans as an export request (the round-trip and fuzz tests'
/// input) and the collector's answer to an export. Kept apart from the lenient, much larger
/// reader in `OTLPJSON.swift`.
extension OTLPJSON {
    public static func encode(_ spans: [Span]) -> [UInt8] {
        var w = JSONWriter(capacity: spans.count * 600 + 32)
        w.beginObject()
        w.key("resourceSpans")
        w.beginArray()
        for g in OTLP.group(spans) {
            w.beginObject()
            w.key("resource")
            w.beginObject()
            w.key("attributes")
            w.beginArray()
            writeKeyValue(Attribute("service.name", .string(g.key.service)), &w)
            for a in g.key.resource { writeKeyValue(a, &w) }
            w.endArray()
            w.endObject()
            w.key("scopeSpans")
            w.beginArray()
            for (scope, list) in g.scopes {
                w.beginObject()
                if let scope {
                    w.key("scope")
                    w.beginObject()
                    w.member("name", scope.name)
                    if let v = scope.version { w.member("version", v) }
                    w.endObject()
                }
                w.key("spans")
                w.beginArray()
                for s in list { writeSpan(s, &w) }
                w.endArray()
                w.endObject()
            }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.endObject()
        return w.bytes
    }

    static func writeSpan(_ s: Span, _ w: inout JSONWriter) {
        w.beginObject()
        w.member("traceId", s.traceID.hex32)
        w.member("spanId", s.spanID.hex)
        if let ts = s.traceState { w.member("traceState", ts) }
        if let p = s.parentSpanID { w.member("parentSpanId", p.hex) }
        w.member("name", s.name)
        w.member("kind", Int(s.kind.rawValue))
        w.member("startTimeUnixNano", String(s.startTimeNanos))
        w.member("endTimeUnixNano", String(s.endTimeNanos))
        let attributes = OTLP.exportAttributes(s)
        if !attributes.isEmpty {
            w.key("attributes")
            writeAttributes(attributes, &w)
        }
        if !s.events.isEmpty {
            w.key("events")
            w.beginArray()
            for e in s.events {
                w.beginObject()
                w.member("timeUnixNano", String(e.timeNanos))
                w.member("name", e.name)
                if !e.attributes.isEmpty {
                    w.key("attributes")
                    writeAttributes(e.attributes, &w)
                }
                w.endObject()
            }
            w.endArray()
        }
        if !s.links.isEmpty {
            w.key("links")
            w.beginArray()
            for l in s.links {
                w.beginObject()
                w.member("traceId", l.traceID.hex32)
                w.member("spanId", l.spanID.hex)
                if let ts = l.traceState { w.member("traceState", ts) }
                if !l.attributes.isEmpty {
                    w.key("attributes")
                    writeAttributes(l.attributes, &w)
                }
                w.endObject()
            }
            w.endArray()
        }
        w.key("status")
        w.beginObject()
        if let m = s.status.message { w.member("message", m) }
        if s.status.code != .unset { w.member("code", Int(s.status.code.rawValue)) }
        w.endObject()
        w.endObject()
    }

    static func writeAttributes(_ attributes: [Attribute], _ w: inout JSONWriter) {
        w.beginArray()
        for a in attributes { writeKeyValue(a, &w) }
        w.endArray()
    }

    static func writeKeyValue(_ a: Attribute, _ w: inout JSONWriter) {
        w.beginObject()
        w.member("key", a.key)
        w.key("value")
        writeAnyValue(a.value, &w)
        w.endObject()
    }

    static func writeAnyValue(_ v: AttributeValue, _ w: inout JSONWriter) {
        w.beginObject()
        switch v {
        case .string(let s): w.member("stringValue", s)
        case .bool(let b): w.member("boolValue", b)
        case .int(let i): w.member("intValue", String(i))
        case .double(let d):
            if d.isFinite {
                w.member("doubleValue", d)
            } else {
                w.member("doubleValue", d.isNaN ? "NaN" : (d > 0 ? "Infinity" : "-Infinity"))
            }
        case .bytes(let b): w.member("bytesValue", Base64.encode(b))
        case .array(let values):
            w.key("arrayValue")
            w.beginObject()
            w.key("values")
            w.beginArray()
            for x in values { writeAnyValue(x, &w) }
            w.endArray()
            w.endObject()
        }
        w.endObject()
    }

    /// `{}` on full success, else `{"partialSuccess":{"rejectedSpans":"3","errorMessage":"..."}}`.
    public static func encodeResponse(rejectedSpans: Int, errorMessage: String?) -> [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        let message = errorMessage.flatMap { $0.isEmpty ? nil : $0 }
        if rejectedSpans > 0 || message != nil {
            w.key("partialSuccess")
            w.beginObject()
            if rejectedSpans > 0 { w.member("rejectedSpans", String(rejectedSpans)) }
            if let message { w.member("errorMessage", message) }
            w.endObject()
        }
        w.endObject()
        return w.bytes
    }
}
