#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf
import TraceModel

/// Zipkin proto3 `ListOfSpans` (`application/x-protobuf` on `POST /api/v2/spans`).
public enum ZipkinProto {
    /// As with JSON, one bad span rejects the whole body, naming `spans[i].field`. Tags keep
    /// the order they arrived in, as JSON's do (a sender's map order, for senders that use one).
    public static func decode(_ body: [UInt8], limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        // withUnsafeBytes only rethrows untyped errors: carry the typed one out in a Result.
        try body.withUnsafeBytes { buffer in
            Result { () throws(WireError) in try decode(buffer, limits: limits) }
        }.get()
    }

    private static func decode(_ body: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) -> DecodedBatch {
        var r = ProtoReader(body)
        var limiter = ValueLimiter(limits)
        var repeated = RepeatedTagValues()
        var spans = [Span]()
        while let (number, type) = try r.nextField() {
            guard number == 1, type == .lengthDelimited else {
                try r.skip(type, number: number)
                continue
            }
            let index = spans.count
            let range = try r.lengthDelimited()
            var field = ""
            do {
                spans.append(try decodeSpan(body, range, field: &field, limiter: &limiter, repeated: &repeated))
            } catch {
                throw error.prefixed(field.isEmpty ? "spans[\(index)]" : "spans[\(index)].\(field)")
            }
        }
        return DecodedBatch(spans: spans, rejected: [], truncatedValues: limiter.truncated)
    }

    private static func decodeSpan(
        _ body: UnsafeRawBufferPointer, _ range: Range<Int>, field: inout String, limiter: inout ValueLimiter, repeated: inout RepeatedTagValues
    ) throws(WireError) -> Span {
        var r = ProtoReader(body, range)
        // A singular field may appear more than once and the last one counts, as protobuf
        // parsers read it: ids and times are checked after the loop, endpoints merged.
        var rawTraceID: Range<Int>?
        var rawSpanID: Range<Int>?
        var rawParentID: Range<Int>?
        var rawTimestamp: UInt64 = 0
        var rawDuration: UInt64 = 0
        var fields = ZipkinSpanFields()
        while let (number, type) = try r.nextField() {
            // A known field with another wire type is an unknown field to protobuf parsers
            // (C++ and SwiftProtobuf keep it aside): skipped here.
            guard type == Self.wireType(ofSpanField: number) else {
                try r.skip(type, number: number)
                continue
            }
            switch number {
            case 1: rawTraceID = try r.lengthDelimited()
            case 2: rawParentID = try r.lengthDelimited()
            case 3: rawSpanID = try r.lengthDelimited()
            case 4:
                switch try r.varint() {
                case 1: fields.kind = .client
                case 2: fields.kind = .server
                case 3: fields.kind = .producer
                case 4: fields.kind = .consumer
                default: fields.kind = .unspecified
                }
            case 5: fields.name = try r.string()
            case 6: rawTimestamp = try r.fixed64()
            case 7: rawDuration = try r.varint()
            case 8: fields.local = try readEndpoint(body, try r.lengthDelimited(), into: fields.local)
            case 9: fields.remote = try readEndpoint(body, try r.lengthDelimited(), into: fields.remote)
            case 10:
                field = "annotations[\(fields.events.count)]"
                fields.events.append(try readAnnotation(body, try r.lengthDelimited()))
                field = ""
            case 11:
                let (key, value, common) = try readTag(body, try r.lengthDelimited(), limiter: &limiter, repeated: &repeated)
                fields.addTag(key, value, common: common)
            case 12: fields.debug = try r.varint() != 0
            case 13: fields.shared = try r.varint() != 0
            default: try r.skip(type, number: number)
            }
        }
        fields.trimTags()

        field = "traceId"
        guard let rawTraceID else { throw WireError("required") }
        guard let traceID = TraceIDParse.bytes(r.bytes(rawTraceID)) else { throw WireError("must be 8 or 16 bytes, got \(rawTraceID.count)") }
        guard traceID.isValid else { throw WireError("all-zero trace id is invalid") }
        field = "id"
        guard let rawSpanID else { throw WireError("required") }
        guard let idValue = TraceIDParse.spanValue(r.bytes(rawSpanID)) else { throw WireError("must be 8 bytes, got \(rawSpanID.count)") }
        guard let spanID = SpanID(idValue) else { throw WireError("all-zero span id is invalid") }
        field = "parentId"
        var parent: SpanID?
        if let rawParentID, !rawParentID.isEmpty {
            guard let v = TraceIDParse.spanValue(r.bytes(rawParentID)) else { throw WireError("must be 8 bytes, got \(rawParentID.count)") }
            parent = SpanID(v)  // zero: no parent
        }
        field = "timestamp"
        guard let timestamp = Micros.toNanos(rawTimestamp) else { throw WireError("out of range") }
        field = "duration"
        guard let duration = Micros.toNanos(rawDuration) else { throw WireError("out of range") }
        field = ""
        return fields.span(traceID: traceID, spanID: spanID, parent: parent, startNanos: timestamp, durationNanos: duration)
    }

    private static func wireType(ofSpanField number: Int) -> ProtoReader.WireType? {
        switch number {
        case 1, 2, 3, 5, 8, 9, 10, 11: return .lengthDelimited
        case 4, 7, 12, 13: return .varint
        case 6: return .fixed64
        default: return nil
        }
    }

    /// An endpoint message, merged into what an earlier occurrence of the field gave.
    private static func readEndpoint(_ body: UnsafeRawBufferPointer, _ range: Range<Int>, into earlier: Endpoint?) throws(WireError) -> Endpoint? {
        var r = ProtoReader(body, range)
        var out = earlier ?? Endpoint()
        while let (number, type) = try r.nextField() {
            switch (number, type) {
            case (1, .lengthDelimited):
                let s = try r.string()
                out.serviceName = s.isEmpty ? nil : s
            case (2, .lengthDelimited): out.ipv4 = IPAddress.ipv4String(r.bytes(try r.lengthDelimited()))
            case (3, .lengthDelimited): out.ipv6 = IPAddress.ipv6String(r.bytes(try r.lengthDelimited()))
            case (4, .varint):
                let port = Int32(truncatingIfNeeded: try r.varint())  // int32 keeps the low 32 bits
                out.port = port > 0 && port <= 65535 ? Int(port) : nil
            default: try r.skip(type, number: number)
            }
        }
        return out.isEmpty ? nil : out
    }

    private static func readAnnotation(_ body: UnsafeRawBufferPointer, _ range: Range<Int>) throws(WireError) -> SpanEvent {
        var r = ProtoReader(body, range)
        var timestamp: UInt64 = 0
        var value = ""
        while let (number, type) = try r.nextField() {
            switch (number, type) {
            case (1, .fixed64):
                guard let t = Micros.toNanos(try r.fixed64()) else { throw WireError("timestamp: out of range") }
                timestamp = t
            case (2, .lengthDelimited): value = try r.string()
            default: try r.skip(type, number: number)
            }
        }
        return ZipkinJSON.event(timeNanos: timestamp, annotation: value)
    }

    /// One `tags` map entry. Common names and the values that repeat from span to span are the
    /// shared strings, as in the JSON decoder.
    private static func readTag(
        _ body: UnsafeRawBufferPointer, _ range: Range<Int>, limiter: inout ValueLimiter, repeated: inout RepeatedTagValues
    ) throws(WireError) -> (key: String, value: String, common: Int?) {
        var r = ProtoReader(body, range)
        var key = ""
        var common: Int?
        var rawValue: Range<Int> = range.lowerBound..<range.lowerBound
        while let (number, type) = try r.nextField() {
            switch (number, type) {
            case (1, .lengthDelimited): (key, common) = CommonStrings.tagName(r.bytes(try r.lengthDelimited()))
            case (2, .lengthDelimited): rawValue = try r.lengthDelimited()
            default: try r.skip(type, number: number)
            }
        }
        let raw = r.bytes(rawValue)
        if let common, let same = repeated.value(forTag: common, raw) { return (key, same, common) }  // within the limit
        let value = String(decoding: raw, as: UTF8.self)
        if let common, value.utf8.count <= limiter.maxBytes { repeated.remember(value, forTag: common) }
        return (key, limiter.limit(value), common)
    }

    /// One span as a `zipkin.proto3.Span` message (the content, without the `ListOfSpans`
    /// framing), written by hand: the same fields as `message(_:)` makes, without building the
    /// generated message and its tag dictionary. A test holds the two equal.
    public static func write(_ s: Span, to w: ProtoWriter) {
        writeIDs(traceID: s.traceID, parentSpanID: s.parentSpanID, spanID: s.spanID, to: w)
        switch s.kind {
        case .client: w.uint64(field: 4, 1)
        case .server: w.uint64(field: 4, 2)
        case .producer: w.uint64(field: 4, 3)
        case .consumer: w.uint64(field: 4, 4)
        case .internal, .unspecified: break
        }
        if !s.name.isEmpty { w.string(field: 5, s.name) }
        let timestamp = Micros.floor(s.startTimeNanos)
        if timestamp != 0 { w.fixed64(field: 6, timestamp) }
        let duration = Micros.ceil(s.durationNanos)
        if duration != 0 { w.uint64(field: 7, duration) }
        var local = s.localEndpoint ?? Endpoint()
        local.serviceName = s.serviceName.isEmpty ? nil : s.serviceName
        writeEndpoint(field: 8, local, to: w)
        if let remote = s.remoteEndpoint { writeEndpoint(field: 9, remote, to: w) }
        for event in s.events {
            writeAnnotation(timeNanos: event.timeNanos, value: ZipkinJSON.annotationValue(event), to: w)
        }
        var seen = Set<String>()
        for a in s.attributes where seen.insert(a.key).inserted {
            writeTag(a.key, a.value.description, to: w)
        }
        if s.status.code == .error && !seen.contains("error") {
            if !seen.contains("otel.status_code") { writeTag("otel.status_code", "ERROR", to: w) }
            writeTag("error", s.status.message ?? "", to: w)
        }
        if s.debug { w.bool(field: 12, true) }
        if s.shared { w.bool(field: 13, true) }
    }

    /// Fields 1-3: a trace id of 8 bytes when its high half is zero, as Zipkin writes them.
    public static func writeIDs(traceID: TraceID, parentSpanID: SpanID?, spanID: SpanID, to w: ProtoWriter) {
        withUnsafeBytes(of: traceID.high.bigEndian) { high in
            withUnsafeBytes(of: traceID.low.bigEndian) { low in
                if traceID.high == 0 {
                    w.bytes(field: 1, low)
                } else {
                    let m = w.beginMessage(field: 1)
                    w.appendRaw(high)
                    w.appendRaw(low)
                    w.endMessage(m)
                }
            }
        }
        if let parent = parentSpanID {
            withUnsafeBytes(of: parent.value.bigEndian) { w.bytes(field: 2, $0) }
        }
        withUnsafeBytes(of: spanID.value.bigEndian) { w.bytes(field: 3, $0) }
    }

    /// An endpoint (field 8 local, 9 remote); nothing when it has no field to carry.
    public static func writeEndpoint(field: Int, _ e: Endpoint, to w: ProtoWriter) {
        let v4 = e.ipv4.flatMap(IPAddress.ipv4Bytes)
        let v6 = e.ipv6.flatMap(IPAddress.ipv6Bytes)
        let port = e.port.flatMap { $0 > 0 && $0 <= 65535 ? $0 : nil }
        let service = e.serviceName.flatMap { $0.isEmpty ? nil : $0 }
        guard service != nil || v4 != nil || v6 != nil || port != nil else { return }
        let m = w.beginMessage(field: field)
        if let service { w.string(field: 1, service) }
        if let v4 { v4.withUnsafeBytes { w.bytes(field: 2, $0) } }
        if let v6 { v6.withUnsafeBytes { w.bytes(field: 3, $0) } }
        if let port { w.int32(field: 4, Int32(port)) }
        w.endMessage(m)
    }

    /// An endpoint from an address's host: an IPv4 literal goes in `ipv4`, an IPv6 one
    /// (bracketed or not) in `ipv6`, and a host name nowhere (proto3 carries addresses as bytes).
    public static func writeEndpoint(field: Int, serviceName: String?, host: Substring?, port: Int?, to w: ProtoWriter) {
        let v4 = host.flatMap(IPAddress.ipv4Value)
        let v6 = v4 == nil ? host.flatMap(IPAddress.ipv6Bytes) : nil
        let port = port.flatMap { $0 > 0 && $0 <= 65535 ? $0 : nil }
        let service = serviceName.flatMap { $0.isEmpty ? nil : $0 }
        guard service != nil || v4 != nil || v6 != nil || port != nil else { return }
        let m = w.beginMessage(field: field)
        if let service { w.string(field: 1, service) }
        if let v4 { withUnsafeBytes(of: v4.bigEndian) { w.bytes(field: 2, $0) } }
        if let v6 { v6.withUnsafeBytes { w.bytes(field: 3, $0) } }
        if let port { w.int32(field: 4, Int32(port)) }
        w.endMessage(m)
    }

    public static func writeAnnotation(timeNanos: UInt64, value: String, to w: ProtoWriter) {
        let m = w.beginMessage(field: 10)
        let timestamp = Micros.floor(timeNanos)
        if timestamp != 0 { w.fixed64(field: 1, timestamp) }
        if !value.isEmpty { w.string(field: 2, value) }
        w.endMessage(m)
    }

    /// One `tags` map entry (field 11).
    public static func writeTag(_ key: String, _ value: String, to w: ProtoWriter) {
        let m = w.beginMessage(field: 11)
        w.string(field: 1, key)
        w.string(field: 2, value)
        w.endMessage(m)
    }
}
