#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf
import TraceModel

/// OTLP/protobuf: `ExportTraceServiceRequest` in, `ExportTraceServiceResponse` out.
public enum OTLPProto {
    typealias PSpan = Opentelemetry_Proto_Trace_V1_Span
    typealias PAnyValue = Opentelemetry_Proto_Common_V1_AnyValue
    typealias PKeyValue = Opentelemetry_Proto_Common_V1_KeyValue

    /// A malformed body throws; a span with bad ids or times is dropped and listed in `rejected`.
    public static func decode(_ body: [UInt8], limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        // withUnsafeBytes only rethrows untyped errors: carry the typed one out in a Result.
        try body.withUnsafeBytes { buffer in
            Result { () throws(WireError) in try decodeByHand(buffer, limits: limits) }
        }.get()
    }

    /// `decode` over bytes lent by the caller: the gRPC receiver's message codec hands its
    /// buffer straight in, with no copy into an array.
    public static func decode(_ buffer: UnsafeRawBufferPointer, limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        try decodeByHand(buffer, limits: limits)
    }

    /// The decoder built on SwiftProtobuf's generated code: the reference the hand-written one
    /// is tested against. It refuses a request with any string that is not UTF-8.
    static func decodeWithGeneratedCode(_ body: [UInt8], limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        if body.isEmpty { return DecodedBatch() }
        let request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
        do {
            request = try .init(serializedBytes: body)
        } catch {
            throw WireError("malformed protobuf ExportTraceServiceRequest: \(error)")
        }
        return batch(from: request, limits: limits)
    }

    /// A generated request as spans: the second half of `decodeWithGeneratedCode`, and what a
    /// gRPC service built on the generated codec (GRPCProtobuf's deserializer) does next.
    package static func batch(
        from request: Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest, limits: WireLimits = .default
    ) -> DecodedBatch {
        var limiter = ValueLimiter(limits)
        var batch = DecodedBatch()
        for (ri, rs) in request.resourceSpans.enumerated() {
            var serviceName = OTLP.defaultServiceName
            var resource = [Attribute]()
            for kv in rs.resource.attributes {
                if kv.key == "service.name" {
                    if case .stringValue(let s)? = kv.value.value, !s.isEmpty { serviceName = s }
                    continue
                }
                resource.append(Attribute(kv.key, limiter.limit(attributeValue(kv.value))))
            }
            for (si, ss) in rs.scopeSpans.enumerated() {
                let scope: InstrumentationScope? =
                    ss.hasScope && !(ss.scope.name.isEmpty && ss.scope.version.isEmpty)
                    ? InstrumentationScope(name: ss.scope.name, version: ss.scope.version.isEmpty ? nil : ss.scope.version) : nil
                for (ki, p) in ss.spans.enumerated() {
                    do {
                        var span = try convert(p, limiter: &limiter)
                        span.serviceName = serviceName
                        span.resource = resource
                        span.scope = scope
                        batch.spans.append(span)
                    } catch {
                        batch.rejected.append(SpanRejection(location: OTLP.location(ri, si, ki), reason: error.reason))
                    }
                }
            }
        }
        batch.truncatedValues = limiter.truncated
        return batch
    }

    private static func convert(_ p: PSpan, limiter: inout ValueLimiter) throws(OTLP.Rejection) -> Span {
        let traceID = try OTLP.traceID(p.traceID)
        let spanID = try OTLP.spanID(p.spanID)
        let parent = try OTLP.parentID(p.parentSpanID)
        let duration = try OTLP.duration(start: p.startTimeUnixNano, end: p.endTimeUnixNano)
        let attributes = attributes(p.attributes, &limiter)
        var events = [SpanEvent]()
        if !p.events.isEmpty {
            events.reserveCapacity(p.events.count)
            for e in p.events {
                events.append(SpanEvent(timeNanos: e.timeUnixNano, name: e.name, attributes: Self.attributes(e.attributes, &limiter)))
            }
        }
        var links = [SpanLink]()
        for l in p.links {
            // A bad link is dropped on its own; the span is still good.
            guard let t = try? OTLP.traceID(l.traceID), let s = try? OTLP.spanID(l.spanID) else { continue }
            links.append(SpanLink(traceID: t, spanID: s, traceState: l.traceState.isEmpty ? nil : l.traceState,
                                  attributes: Self.attributes(l.attributes, &limiter)))
        }
        let status = p.hasStatus
            ? SpanStatus(code: OTLP.statusCode(p.status.code.rawValue), message: p.status.message.isEmpty ? nil : p.status.message)
            : .unset
        return Span(
            traceID: traceID, spanID: spanID, parentSpanID: parent, kind: OTLP.kind(p.kind.rawValue), name: p.name,
            startTimeNanos: p.startTimeUnixNano, durationNanos: duration, serviceName: OTLP.defaultServiceName,
            attributes: attributes, events: events, links: links, status: status,
            remoteEndpoint: OTLP.remoteEndpoint(attributes), traceState: p.traceState.isEmpty ? nil : p.traceState)
    }

    private static func attributes(_ kvs: [PKeyValue], _ limiter: inout ValueLimiter) -> [Attribute] {
        if kvs.isEmpty { return [] }
        var out = [Attribute]()
        out.reserveCapacity(kvs.count)
        for kv in kvs { out.append(Attribute(kv.key, limiter.limit(attributeValue(kv.value)))) }
        return out
    }

    /// kvlist values become a JSON object string; an empty value becomes "".
    static func attributeValue(_ v: PAnyValue) -> AttributeValue {
        switch v.value {
        case .stringValue(let s)?: return .string(s)
        case .boolValue(let b)?: return .bool(b)
        case .intValue(let i)?: return .int(i)
        case .doubleValue(let d)?: return .double(d)
        case .bytesValue(let d)?: return .bytes([UInt8](d))
        case .arrayValue(let a)?: return .array(a.values.map(attributeValue))
        case .kvlistValue(let kv)?:
            var w = JSONWriter()
            writeKVList(kv.values, &w, depth: 0)
            return .string(String(decoding: w.bytes, as: UTF8.self))
        case .stringValueStrindex?, nil: return .string("")
        }
    }

    private static func writeKVList(_ kvs: [PKeyValue], _ w: inout JSONWriter, depth: Int) {
        w.beginObject()
        for kv in kvs {
            w.key(kv.key)
            writeAny(kv.value, &w, depth: depth + 1)
        }
        w.endObject()
    }

    private static func writeAny(_ v: PAnyValue, _ w: inout JSONWriter, depth: Int) {
        switch v.value {
        case .kvlistValue(let kv)?: writeKVList(kv.values, &w, depth: depth)
        case .arrayValue(let a)?:
            w.beginArray()
            for x in a.values { writeAny(x, &w, depth: depth + 1) }
            w.endArray()
        case nil: w.appendNull()
        default: w.append(attributeValue: attributeValue(v))
        }
    }

    // MARK: - Encoding

    /// What SwiftProtobuf's generated code writes for these spans: the reference the
    /// hand-written `encode` is held to, byte for byte.
    static func encodeWithGeneratedCode(_ spans: [Span]) -> [UInt8] {
        (try? request(spans).serializedBytes()) ?? []
    }

    static func request(_ spans: [Span]) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
        var req = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        for g in OTLP.group(spans) {
            var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
            var resource = Opentelemetry_Proto_Resource_V1_Resource()
            resource.attributes = [keyValue(Attribute("service.name", .string(g.key.service)))] + g.key.resource.map(keyValue)
            rs.resource = resource
            for (scope, list) in g.scopes {
                var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
                if let scope {
                    var sc = Opentelemetry_Proto_Common_V1_InstrumentationScope()
                    sc.name = scope.name
                    sc.version = scope.version ?? ""
                    ss.scope = sc
                }
                ss.spans = list.map(message)
                rs.scopeSpans.append(ss)
            }
            req.resourceSpans.append(rs)
        }
        return req
    }

    static func message(_ s: Span) -> PSpan {
        var p = PSpan()
        p.traceID = Data(s.traceID.bytes)
        p.spanID = Data(s.spanID.bytes)
        if let parent = s.parentSpanID { p.parentSpanID = Data(parent.bytes) }
        if let ts = s.traceState { p.traceState = ts }
        p.name = s.name
        p.kind = PSpan.SpanKind(rawValue: Int(s.kind.rawValue)) ?? .unspecified
        p.startTimeUnixNano = s.startTimeNanos
        p.endTimeUnixNano = s.endTimeNanos
        p.attributes = OTLP.exportAttributes(s).map(keyValue)
        p.events = s.events.map { e in
            var pe = PSpan.Event()
            pe.timeUnixNano = e.timeNanos
            pe.name = e.name
            pe.attributes = e.attributes.map(keyValue)
            return pe
        }
        p.links = s.links.map { l in
            var pl = PSpan.Link()
            pl.traceID = Data(l.traceID.bytes)
            pl.spanID = Data(l.spanID.bytes)
            if let ts = l.traceState { pl.traceState = ts }
            pl.attributes = l.attributes.map(keyValue)
            return pl
        }
        if s.status.code != .unset || s.status.message != nil {
            var st = Opentelemetry_Proto_Trace_V1_Status()
            st.code = Opentelemetry_Proto_Trace_V1_Status.StatusCode(rawValue: Int(s.status.code.rawValue)) ?? .unset
            st.message = s.status.message ?? ""
            p.status = st
        }
        return p
    }

    static func keyValue(_ a: Attribute) -> PKeyValue {
        var kv = PKeyValue()
        kv.key = a.key
        kv.value = anyValue(a.value)
        return kv
    }

    static func anyValue(_ v: AttributeValue) -> PAnyValue {
        var p = PAnyValue()
        switch v {
        case .string(let s): p.stringValue = s
        case .bool(let b): p.boolValue = b
        case .int(let i): p.intValue = i
        case .double(let d): p.doubleValue = d
        case .bytes(let b): p.bytesValue = Data(b)
        case .array(let values):
            var a = Opentelemetry_Proto_Common_V1_ArrayValue()
            a.values = values.map(anyValue)
            p.arrayValue = a
        }
        return p
    }

    /// `partial_success` is set only when spans were rejected or there is a message.
    public static func encodeResponse(rejectedSpans: Int, errorMessage: String?) -> [UInt8] {
        var resp = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse()
        if rejectedSpans > 0 || (errorMessage.map { !$0.isEmpty } ?? false) {
            var ps = Opentelemetry_Proto_Collector_Trace_V1_ExportTracePartialSuccess()
            ps.rejectedSpans = Int64(max(0, rejectedSpans))
            ps.errorMessage = errorMessage ?? ""
            resp.partialSuccess = ps
        }
        return (try? resp.serializedBytes()) ?? []
    }
}
