#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf
import TraceModel
import TraceWire

/// OTLP protobuf through SwiftProtobuf's generated code: the reference the hand-written decoder
/// and encoder in TraceWire are held to (same spans, same rejections, same bytes). Kept out of
/// the product, which reads and writes OTLP by hand (see `OTLPProto+HandDecoder.swift`).
extension OTLPProto {
    /// The decoder built on SwiftProtobuf's generated code: the reference the hand-written one
    /// is tested against. It refuses a request with any string that is not UTF-8.
    package static func decodeWithGeneratedCode(_ body: [UInt8], limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
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
    /// gRPC service built on GRPCProtobuf's generated-message codec would do next (the
    /// collector benchmark compares it with the hand-written codec the receiver uses).
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


    // MARK: - Encoding

    /// What SwiftProtobuf's generated code writes for these spans: the reference the
    /// hand-written `encode` is held to, byte for byte.
    package static func encodeWithGeneratedCode(_ spans: [Span]) -> [UInt8] {
        (try? request(spans).serializedBytes()) ?? []
    }

    package static func request(_ spans: [Span]) -> Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest {
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

    package static func message(_ s: Span) -> PSpan {
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

    package static func keyValue(_ a: Attribute) -> PKeyValue {
        var kv = PKeyValue()
        kv.key = a.key
        kv.value = anyValue(a.value)
        return kv
    }

    package static func anyValue(_ v: AttributeValue) -> PAnyValue {
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
}
