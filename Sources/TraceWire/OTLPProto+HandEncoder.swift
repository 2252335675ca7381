import TraceModel

/// OTLP protobuf written by hand (`ProtoWriter`), byte for byte what SwiftProtobuf's generated
/// code writes for the same spans (fields in number order, proto3 defaults left out, a oneof
/// written even when it holds its default). The sidecar exports OTLP through this one span at a
/// time, and building generated messages for each span cost more than the encoding; the
/// generated `request(_:)` stays as the reference the tests compare against.
extension OTLPProto {
    public static func encode(_ spans: [Span]) -> [UInt8] {
        let w = ProtoWriter(capacity: 1024 * max(1, spans.count))
        write(spans, to: w)
        return w.bytes
    }

    /// An `ExportTraceServiceRequest`: spans grouped by resource, then by scope.
    public static func write(_ spans: [Span], to w: ProtoWriter) {
        for group in OTLP.group(spans) {
            let resourceSpans = w.beginMessage(field: 1)
            let resource = w.beginMessage(field: 1)
            writeKeyValue("service.name", .string(group.key.service), field: 1, to: w)
            for a in group.key.resource { writeKeyValue(a.key, a.value, field: 1, to: w) }
            w.endMessage(resource)
            for (scope, list) in group.scopes {
                let scopeSpans = w.beginMessage(field: 2)
                if let scope {
                    let message = w.beginMessage(field: 1)
                    if !scope.name.isEmpty { w.string(field: 1, scope.name) }
                    if let version = scope.version, !version.isEmpty { w.string(field: 2, version) }
                    w.endMessage(message)
                }
                for span in list {
                    let message = w.beginMessage(field: 2)
                    writeSpan(span, to: w)
                    w.endMessage(message)
                }
                w.endMessage(scopeSpans)
            }
            w.endMessage(resourceSpans)
        }
    }

    // Span: trace_id 1, span_id 2, trace_state 3, parent_span_id 4, name 5, kind 6,
    // start 7, end 8, attributes 9, events 11, links 13, status 15.
    private static func writeSpan(_ s: Span, to w: ProtoWriter) {
        writeID(s.traceID, field: 1, to: w)
        writeID(s.spanID, field: 2, to: w)
        if let state = s.traceState, !state.isEmpty { w.string(field: 3, state) }
        if let parent = s.parentSpanID { writeID(parent, field: 4, to: w) }
        if !s.name.isEmpty { w.string(field: 5, s.name) }
        if s.kind.rawValue != 0 { w.uint64(field: 6, UInt64(s.kind.rawValue)) }
        if s.startTimeNanos != 0 { w.fixed64(field: 7, s.startTimeNanos) }
        if s.endTimeNanos != 0 { w.fixed64(field: 8, s.endTimeNanos) }
        for a in s.attributes { writeKeyValue(a.key, a.value, field: 9, to: w) }
        for a in OTLP.endpointAttributes(s) { writeKeyValue(a.key, a.value, field: 9, to: w) }
        for e in s.events {
            let event = w.beginMessage(field: 11)
            if e.timeNanos != 0 { w.fixed64(field: 1, e.timeNanos) }
            if !e.name.isEmpty { w.string(field: 2, e.name) }
            for a in e.attributes { writeKeyValue(a.key, a.value, field: 3, to: w) }
            w.endMessage(event)
        }
        for l in s.links {
            let link = w.beginMessage(field: 13)
            writeID(l.traceID, field: 1, to: w)
            writeID(l.spanID, field: 2, to: w)
            if let state = l.traceState, !state.isEmpty { w.string(field: 3, state) }
            for a in l.attributes { writeKeyValue(a.key, a.value, field: 4, to: w) }
            w.endMessage(link)
        }
        if s.status.code != .unset || s.status.message != nil {
            let status = w.beginMessage(field: 15)
            if let message = s.status.message, !message.isEmpty { w.string(field: 2, message) }
            if s.status.code.rawValue != 0 { w.uint64(field: 3, UInt64(s.status.code.rawValue)) }
            w.endMessage(status)
        }
    }

    private static func writeID(_ id: TraceID, field: Int, to w: ProtoWriter) {
        withUnsafeBytes(of: id.high.bigEndian) { high in
            withUnsafeBytes(of: id.low.bigEndian) { low in
                let m = w.beginMessage(field: field)
                w.appendRaw(high)
                w.appendRaw(low)
                w.endMessage(m)
            }
        }
    }

    private static func writeID(_ id: SpanID, field: Int, to w: ProtoWriter) {
        withUnsafeBytes(of: id.value.bigEndian) { w.bytes(field: field, $0) }
    }

    // KeyValue: key 1, value 2 (an AnyValue, written even when empty, as the generated code
    // writes a set message field).
    private static func writeKeyValue(_ key: String, _ value: AttributeValue, field: Int, to w: ProtoWriter) {
        let entry = w.beginMessage(field: field)
        if !key.isEmpty { w.string(field: 1, key) }
        let any = w.beginMessage(field: 2)
        writeAnyValue(value, to: w)
        w.endMessage(any)
        w.endMessage(entry)
    }

    // AnyValue's oneof: string 1, bool 2, int 3, double 4, array 5 (values 1), bytes 7.
    private static func writeAnyValue(_ value: AttributeValue, to w: ProtoWriter) {
        switch value {
        case .string(let s): w.string(field: 1, s)
        case .bool(let b): w.uint64(field: 2, b ? 1 : 0)
        case .int(let i): w.uint64(field: 3, UInt64(bitPattern: i))
        case .double(let d): w.fixed64(field: 4, d.bitPattern)
        case .bytes(let b): b.withUnsafeBytes { w.bytes(field: 7, $0) }
        case .array(let values):
            let array = w.beginMessage(field: 5)
            for v in values {
                let element = w.beginMessage(field: 1)
                writeAnyValue(v, to: w)
                w.endMessage(element)
            }
            w.endMessage(array)
        }
    }
}
