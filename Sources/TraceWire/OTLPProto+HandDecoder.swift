#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import TraceModel

/// OTLP protobuf read by hand over the raw bytes (`ProtoReader`), as Zipkin proto3 is. Two
/// reasons over SwiftProtobuf's generated parser, which stays as the reference the tests hold
/// this one to:
/// - text that is not valid UTF-8 is repaired (U+FFFD) and the spans kept, as every other ingest
///   path repairs it; the generated parser refused the whole request for one bad character,
///   which is how OpenTelemetry's own collector loses batches from SDKs that do not check;
/// - a malformed request names where it broke (`resourceSpans[0].scopeSpans[0].spans[3]`).
///
/// It reads what Google's parser reads: the last of a repeated singular field counts, repeated
/// singular messages merge, a known field with another wire type is an unknown field, and
/// unknown fields are skipped.
extension OTLPProto {
    static func decodeByHand(_ body: UnsafeRawBufferPointer, limits: WireLimits) throws(WireError) -> DecodedBatch {
        var decoder = OTLPProtoDecoder(body: body, limiter: ValueLimiter(limits))
        try decoder.request()
        decoder.batch.truncatedValues = decoder.limiter.truncated
        return decoder.batch
    }
}

private struct OTLPProtoDecoder {
    typealias Ranges = [Range<Int>]

    let body: UnsafeRawBufferPointer
    var limiter: ValueLimiter
    var batch = DecodedBatch()

    /// Messages inside messages, as deep as protobuf's own parsers allow (100).
    static let depthLimit = 100

    init(body: UnsafeRawBufferPointer, limiter: ValueLimiter) {
        self.body = body
        self.limiter = limiter
    }

    /// Each field of a message, in order, with a reader positioned at its value; fields whose
    /// wire type is not `expected(number)` are skipped as unknown.
    @inline(__always) private static func fields(
        _ body: UnsafeRawBufferPointer, _ ranges: Ranges, expected: (Int) -> ProtoReader.WireType?,
        _ visit: (Int, inout ProtoReader) throws(WireError) -> Void
    ) throws(WireError) {
        for range in ranges {
            var r = ProtoReader(body, range)
            while let (number, type) = try r.nextField() {
                guard type == expected(number) else {
                    try r.skip(type, number: number)
                    continue
                }
                try visit(number, &r)
            }
        }
    }

    mutating func request() throws(WireError) {
        var resourceIndex = 0
        try Self.fields(body, [0..<body.count], expected: { $0 == 1 ? .lengthDelimited : nil }) { _, r throws(WireError) in
            do throws(WireError) {
                try resourceSpans(try r.lengthDelimited(), index: resourceIndex)
            } catch {
                throw error.inside("resourceSpans[\(resourceIndex)]")
            }
            resourceIndex += 1
        }
    }

    // ResourceSpans: resource = 1, scope_spans = 2. The resource may come after the spans it
    // describes, so it is read first.
    private mutating func resourceSpans(_ range: Range<Int>, index: Int) throws(WireError) {
        var resourceRanges = Ranges()
        var scopeRanges = Ranges()
        try Self.fields(body, [range], expected: { $0 == 1 || $0 == 2 ? .lengthDelimited : nil }) { number, r throws(WireError) in
            if number == 1 { resourceRanges.append(try r.lengthDelimited()) } else { scopeRanges.append(try r.lengthDelimited()) }
        }
        var serviceName = OTLP.defaultServiceName
        var resource = [Attribute]()
        var attributeIndex = 0
        // Resource: attributes = 1 (its service.name names the spans' service), entity_refs = 3.
        try Self.fields(body, resourceRanges, expected: { $0 == 1 || $0 == 3 ? .lengthDelimited : nil }) { number, r throws(WireError) in
            guard number == 1 else {
                try Self.checkEntityRef(body, try r.lengthDelimited())
                return
            }
            let (key, value): (String, AttributeValue)
            do throws(WireError) {
                (key, value) = try keyValue(try r.lengthDelimited(), depth: 3)
            } catch {
                throw error.inside("resource.attributes[\(attributeIndex)]")
            }
            if key == "service.name" {
                if case .string(let s) = value, !s.isEmpty { serviceName = s }
            } else {
                resource.append(Attribute(key, limiter.limit(value)))
            }
            attributeIndex += 1
        }
        for (scopeIndex, scopeRange) in scopeRanges.enumerated() {
            do throws(WireError) {
                try scopeSpans(scopeRange, location: (index, scopeIndex), serviceName: serviceName, resource: resource)
            } catch {
                throw error.inside("scopeSpans[\(scopeIndex)]")
            }
        }
    }

    // ScopeSpans: scope = 1 (name = 1, version = 2), spans = 2.
    private mutating func scopeSpans(
        _ range: Range<Int>, location: (Int, Int), serviceName: String, resource: [Attribute]
    ) throws(WireError) {
        var scopeRanges = Ranges()
        var spanRanges = Ranges()
        try Self.fields(body, [range], expected: { $0 == 1 || $0 == 2 ? .lengthDelimited : nil }) { number, r throws(WireError) in
            if number == 1 { scopeRanges.append(try r.lengthDelimited()) } else { spanRanges.append(try r.lengthDelimited()) }
        }
        var name = ""
        var version = ""
        try Self.fields(body, scopeRanges, expected: { (1...3).contains($0) ? .lengthDelimited : nil }) { number, r throws(WireError) in
            switch number {
            case 1: name = try r.string()
            case 2: version = try r.string()
            default: _ = try keyValue(try r.lengthDelimited(), depth: 5)  // unused, but must be well-formed
            }
        }
        let scope = scopeRanges.isEmpty || (name.isEmpty && version.isEmpty)
            ? nil : InstrumentationScope(name: name, version: version.isEmpty ? nil : version)
        for (spanIndex, spanRange) in spanRanges.enumerated() {
            do {
                var span = try self.span(spanRange)
                span.serviceName = serviceName
                span.resource = resource
                span.scope = scope
                batch.spans.append(span)
            } catch let rejection as OTLP.Rejection {
                batch.rejected.append(SpanRejection(location: OTLP.location(location.0, location.1, spanIndex), reason: rejection.reason))
            } catch let error as WireError {
                throw error.inside("spans[\(spanIndex)]")
            } catch {
                throw WireError("spans[\(spanIndex)]: \(error)")
            }
        }
    }

    /// Parts the collector does not use are still checked, as protobuf's parsers check them:
    /// a request they refuse is refused here too. An EntityRef holds only strings (1 to 4).
    private static func checkEntityRef(_ body: UnsafeRawBufferPointer, _ range: Range<Int>) throws(WireError) {
        try fields(body, [range], expected: { _ in nil }) { _, _ throws(WireError) in }
    }

    private static func spanFieldType(_ number: Int) -> ProtoReader.WireType? {
        switch number {
        case 1, 2, 3, 4, 5, 9, 11, 13, 15: return .lengthDelimited
        case 6: return .varint
        case 7, 8: return .fixed64
        default: return nil
        }
    }

    /// A span, or a `Rejection` when its ids or times break OTLP's rules (the rest of the
    /// request is kept), or a `WireError` when its bytes are not protobuf (nothing is kept).
    private mutating func span(_ range: Range<Int>) throws -> Span {
        var traceIDRange = range.lowerBound..<range.lowerBound
        var spanIDRange = traceIDRange
        var parentRange = traceIDRange
        var traceState = ""
        var name = ""
        var kind = 0
        var start: UInt64 = 0
        var end: UInt64 = 0
        var attributes = [Attribute]()
        var events = [SpanEvent]()
        var links = [SpanLink]()
        var statusRanges = Ranges()
        // The repeated field being read, named only if it turns out malformed.
        var part: (name: StaticString, index: Int)?
        do throws(WireError) {
            try Self.fields(body, [range], expected: Self.spanFieldType) { number, r throws(WireError) in
                switch number {
                case 1: traceIDRange = try r.lengthDelimited()
                case 2: spanIDRange = try r.lengthDelimited()
                case 3: traceState = try r.string()
                case 4: parentRange = try r.lengthDelimited()
                case 5: name = try r.string()
                case 6: kind = Int(Int32(truncatingIfNeeded: try r.varint()))
                case 7: start = try r.fixed64()
                case 8: end = try r.fixed64()
                case 9:
                    part = ("attributes", attributes.count)
                    let (key, value) = try keyValue(try r.lengthDelimited(), depth: 5)
                    attributes.append(Attribute(key, limiter.limit(value)))
                case 11:
                    part = ("events", events.count)
                    events.append(try event(try r.lengthDelimited()))
                case 13:
                    part = ("links", links.count)
                    if let link = try link(try r.lengthDelimited()) { links.append(link) }
                default: statusRanges.append(try r.lengthDelimited())
                }
                part = nil
            }
        } catch {
            guard let part else { throw error }
            throw error.inside("\(part.name)[\(part.index)]")
        }
        // Status: message = 2, code = 3.
        var statusMessage = ""
        var statusCode = 0
        try Self.fields(body, statusRanges, expected: { $0 == 2 ? .lengthDelimited : $0 == 3 ? .varint : nil }) { number, r throws(WireError) in
            if number == 2 { statusMessage = try r.string() } else { statusCode = Int(Int32(truncatingIfNeeded: try r.varint())) }
        }
        let traceID = try OTLP.traceID(body[traceIDRange])
        let spanID = try OTLP.spanID(body[spanIDRange])
        let parent = try OTLP.parentID(body[parentRange])
        let duration = try OTLP.duration(start: start, end: end)
        let status = statusRanges.isEmpty
            ? SpanStatus.unset : SpanStatus(code: OTLP.statusCode(statusCode), message: statusMessage.isEmpty ? nil : statusMessage)
        return Span(
            traceID: traceID, spanID: spanID, parentSpanID: parent, kind: OTLP.kind(kind), name: name,
            startTimeNanos: start, durationNanos: duration, serviceName: OTLP.defaultServiceName,
            attributes: attributes, events: events, links: links, status: status,
            remoteEndpoint: OTLP.remoteEndpoint(attributes), traceState: traceState.isEmpty ? nil : traceState)
    }

    // Event: time_unix_nano = 1, name = 2, attributes = 3.
    private mutating func event(_ range: Range<Int>) throws(WireError) -> SpanEvent {
        var time: UInt64 = 0
        var name = ""
        var attributes = [Attribute]()
        try Self.fields(body, [range], expected: { $0 == 1 ? .fixed64 : $0 == 2 || $0 == 3 ? .lengthDelimited : nil }) { number, r throws(WireError) in
            switch number {
            case 1: time = try r.fixed64()
            case 2: name = try r.string()
            default:
                let (key, value) = try keyValue(try r.lengthDelimited(), depth: 6)
                attributes.append(Attribute(key, limiter.limit(value)))
            }
        }
        return SpanEvent(timeNanos: time, name: name, attributes: attributes)
    }

    /// Link: trace_id = 1, span_id = 2, trace_state = 3, attributes = 4. A link with bad ids is
    /// dropped on its own; the span is still good.
    private mutating func link(_ range: Range<Int>) throws(WireError) -> SpanLink? {
        var traceIDRange = range.lowerBound..<range.lowerBound
        var spanIDRange = traceIDRange
        var traceState = ""
        var attributes = [Attribute]()
        try Self.fields(body, [range], expected: { (1...4).contains($0) ? .lengthDelimited : nil }) { number, r throws(WireError) in
            switch number {
            case 1: traceIDRange = try r.lengthDelimited()
            case 2: spanIDRange = try r.lengthDelimited()
            case 3: traceState = try r.string()
            default:
                let (key, value) = try keyValue(try r.lengthDelimited(), depth: 6)
                attributes.append(Attribute(key, limiter.limit(value)))
            }
        }
        guard let traceID = try? OTLP.traceID(body[traceIDRange]), let spanID = try? OTLP.spanID(body[spanIDRange]) else { return nil }
        return SpanLink(traceID: traceID, spanID: spanID, traceState: traceState.isEmpty ? nil : traceState, attributes: attributes)
    }

    // KeyValue: key = 1, value = 2 (an AnyValue; repeated ones merge).
    private func keyValue(_ range: Range<Int>, depth: Int) throws(WireError) -> (String, AttributeValue) {
        var key = ""
        var valueRanges = Ranges()
        try Self.fields(body, [range], expected: { $0 == 1 || $0 == 2 ? .lengthDelimited : nil }) { number, r throws(WireError) in
            // Common names (the sidecar's tags, OpenTelemetry's conventions) are shared strings.
            if number == 1 { key = CommonStrings.tagName(r.bytes(try r.lengthDelimited())).name } else { valueRanges.append(try r.lengthDelimited()) }
        }
        return (key, try anyValue(valueRanges, depth: depth + 1))
    }

    /// The value an AnyValue's bytes hold, as `OTLPProto.attributeValue` makes it of a
    /// generated message: arrays of values, a key-value list as a JSON object string, "" for none.
    private func anyValue(_ ranges: Ranges, depth: Int) throws(WireError) -> AttributeValue {
        let value = try anyValueCase(ranges, depth: depth)
        switch value {
        case .none: return .string("")
        case .string(let range): return .string(String(decoding: body[range], as: UTF8.self))
        case .scalar(let scalar): return scalar
        case .bytes(let range): return .bytes([UInt8](body[range]))
        case .array, .kvlist: return OTLPProto.attributeValue(try anyValueMessage(value, depth: depth))
        }
    }

    private enum AnyValueCase {
        case none
        case string(Range<Int>)
        case scalar(AttributeValue)
        case bytes(Range<Int>)
        case array(Ranges)
        case kvlist(Ranges)
    }

    private static func anyValueFieldType(_ number: Int) -> ProtoReader.WireType? {
        switch number {
        case 1, 5, 6, 7: return .lengthDelimited
        case 2, 3, 8: return .varint
        case 4: return .fixed64
        default: return nil
        }
    }

    /// The oneof's last case wins; a message case that comes again merges with itself. A list
    /// that a later case replaces is still read through, as protobuf's parsers read it: its
    /// bytes must be well-formed even though its values are not kept.
    private func anyValueCase(_ ranges: Ranges, depth: Int) throws(WireError) -> AnyValueCase {
        guard depth <= Self.depthLimit else { throw WireError("malformed protobuf: values nested too deep") }
        var value = AnyValueCase.none
        try Self.fields(body, ranges, expected: Self.anyValueFieldType) { number, r throws(WireError) in
            switch (value, number) {
            case (.array(let replaced), 1...4), (.array(let replaced), 6...8): _ = try arrayMessage(replaced, depth: depth)
            case (.kvlist(let replaced), 1...5), (.kvlist(let replaced), 7...8): _ = try kvlistMessage(replaced, depth: depth)
            default: break
            }
            switch number {
            case 1: value = .string(try r.lengthDelimited())
            case 2: value = .scalar(.bool(try r.varint() != 0))
            case 3: value = .scalar(.int(Int64(bitPattern: try r.varint())))
            case 4: value = .scalar(.double(Double(bitPattern: try r.fixed64())))
            case 5:
                let range = try r.lengthDelimited()
                if case .array(let earlier) = value { value = .array(earlier + [range]) } else { value = .array([range]) }
            case 6:
                let range = try r.lengthDelimited()
                if case .kvlist(let earlier) = value { value = .kvlist(earlier + [range]) } else { value = .kvlist([range]) }
            case 7: value = .bytes(try r.lengthDelimited())
            default:
                _ = try r.varint()  // string_value_strindex: a profiles-only dictionary index
                value = .none
            }
        }
        return value
    }

    /// Arrays and key-value lists become the generated message, so that one conversion
    /// (`OTLPProto.attributeValue`) turns them into values for both decoders.
    private func anyValueMessage(_ ranges: Ranges, depth: Int) throws(WireError) -> OTLPProto.PAnyValue {
        try anyValueMessage(try anyValueCase(ranges, depth: depth), depth: depth)
    }

    private func anyValueMessage(_ value: AnyValueCase, depth: Int) throws(WireError) -> OTLPProto.PAnyValue {
        var message = OTLPProto.PAnyValue()
        switch value {
        case .none: break
        case .string(let range): message.stringValue = String(decoding: body[range], as: UTF8.self)
        case .scalar(.bool(let b)): message.boolValue = b
        case .scalar(.int(let i)): message.intValue = i
        case .scalar(.double(let d)): message.doubleValue = d
        case .scalar: break
        case .bytes(let range): message.bytesValue = .init(body[range])
        case .array(let arrays): message.arrayValue = try arrayMessage(arrays, depth: depth)
        case .kvlist(let lists): message.kvlistValue = try kvlistMessage(lists, depth: depth)
        }
        return message
    }

    // ArrayValue: values = 1.
    private func arrayMessage(_ ranges: Ranges, depth: Int) throws(WireError) -> Opentelemetry_Proto_Common_V1_ArrayValue {
        var array = Opentelemetry_Proto_Common_V1_ArrayValue()
        try Self.fields(body, ranges, expected: { $0 == 1 ? .lengthDelimited : nil }) { _, r throws(WireError) in
            array.values.append(try anyValueMessage([try r.lengthDelimited()], depth: depth + 2))
        }
        return array
    }

    // KeyValueList: values = 1, each a KeyValue.
    private func kvlistMessage(_ ranges: Ranges, depth: Int) throws(WireError) -> Opentelemetry_Proto_Common_V1_KeyValueList {
        var list = Opentelemetry_Proto_Common_V1_KeyValueList()
        try Self.fields(body, ranges, expected: { $0 == 1 ? .lengthDelimited : nil }) { _, r throws(WireError) in
            var entry = OTLPProto.PKeyValue()
            var valueRanges = Ranges()
            try Self.fields(body, [try r.lengthDelimited()], expected: { $0 == 1 || $0 == 2 ? .lengthDelimited : nil }) { number, r throws(WireError) in
                if number == 1 { entry.key = try r.string() } else { valueRanges.append(try r.lengthDelimited()) }
            }
            if !valueRanges.isEmpty { entry.value = try anyValueMessage(valueRanges, depth: depth + 3) }
            list.values.append(entry)
        }
        return list
    }
}

private extension WireError {
    /// This error one level out: `part.inner: …` when it already names a place inside, and
    /// `part: …` when it is the reader's own (every one of those starts "malformed").
    func inside(_ part: String) -> WireError {
        WireError(part + (message.hasPrefix("malformed") ? ": " : ".") + message, kind: kind)
    }
}
