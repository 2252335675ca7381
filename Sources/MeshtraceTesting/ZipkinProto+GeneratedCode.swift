#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf
import TraceModel
import TraceWire

/// Zipkin proto3 through SwiftProtobuf's generated code: the reference the hand-written decoder
/// and writer in TraceWire are held to. Kept out of the product.
extension ZipkinProto {
    /// The decoder built on SwiftProtobuf's generated code: the reference the hand-written one
    /// is tested against.
    package static func decodeWithGeneratedCode(_ body: [UInt8], limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        if body.isEmpty { return DecodedBatch() }
        let list: Zipkin_Proto3_ListOfSpans
        do {
            list = try Zipkin_Proto3_ListOfSpans(serializedBytes: body)
        } catch {
            throw WireError("malformed protobuf ListOfSpans: \(error)")
        }
        var limiter = ValueLimiter(limits)
        var spans = [Span]()
        spans.reserveCapacity(list.spans.count)
        for (i, p) in list.spans.enumerated() {
            spans.append(try convert(p, index: i, limiter: &limiter))
        }
        return DecodedBatch(spans: spans, rejected: [], truncatedValues: limiter.truncated)
    }

    private static func convert(_ p: Zipkin_Proto3_Span, index i: Int, limiter: inout ValueLimiter) throws(WireError) -> Span {
        guard let traceID = TraceIDParse.bytes(p.traceID) else {
            throw WireError("spans[\(i)].traceId: must be 8 or 16 bytes, got \(p.traceID.count)")
        }
        guard traceID.isValid else { throw WireError("spans[\(i)].traceId: all-zero trace id is invalid") }
        guard let idValue = TraceIDParse.spanValue(p.id) else {
            throw WireError("spans[\(i)].id: must be 8 bytes, got \(p.id.count)")
        }
        guard let spanID = SpanID(idValue) else { throw WireError("spans[\(i)].id: all-zero span id is invalid") }
        var parent: SpanID?
        if !p.parentID.isEmpty {
            guard let v = TraceIDParse.spanValue(p.parentID) else {
                throw WireError("spans[\(i)].parentId: must be 8 bytes, got \(p.parentID.count)")
            }
            parent = SpanID(v)  // zero: no parent
        }
        guard let start = Micros.toNanos(p.timestamp) else { throw WireError("spans[\(i)].timestamp: out of range") }
        guard let duration = Micros.toNanos(p.duration) else { throw WireError("spans[\(i)].duration: out of range") }

        var fields = ZipkinSpanFields()
        switch p.kind {
        case .client: fields.kind = .client
        case .server: fields.kind = .server
        case .producer: fields.kind = .producer
        case .consumer: fields.kind = .consumer
        default: fields.kind = .unspecified
        }
        fields.name = p.name
        // Protobuf maps are unordered; sort so decoding is deterministic.
        for (k, v) in p.tags.sorted(by: { $0.key < $1.key }) {
            fields.addTag(k, limiter.limit(v), common: nil)
        }
        fields.local = p.hasLocalEndpoint ? endpoint(p.localEndpoint) : nil
        fields.remote = p.hasRemoteEndpoint ? endpoint(p.remoteEndpoint) : nil
        for (n, a) in p.annotations.enumerated() {
            guard let t = Micros.toNanos(a.timestamp) else {
                throw WireError("spans[\(i)].annotations[\(n)].timestamp: out of range")
            }
            fields.events.append(ZipkinJSON.event(timeNanos: t, annotation: a.value))
        }
        fields.debug = p.debug
        fields.shared = p.shared
        return fields.span(traceID: traceID, spanID: spanID, parent: parent, startNanos: start, durationNanos: duration)
    }

    private static func endpoint(_ e: Zipkin_Proto3_Endpoint) -> Endpoint? {
        var out = Endpoint()
        if !e.serviceName.isEmpty { out.serviceName = e.serviceName }
        out.ipv4 = IPAddress.ipv4String(e.ipv4)
        out.ipv6 = IPAddress.ipv6String(e.ipv6)
        if e.port > 0 && e.port <= 65535 { out.port = Int(e.port) }
        return out.isEmpty ? nil : out
    }

    package static func encodeWithGeneratedCode(_ spans: [Span]) -> [UInt8] {
        var list = Zipkin_Proto3_ListOfSpans()
        list.spans = spans.map(message)
        return (try? list.serializedBytes()) ?? []
    }

    package static func message(_ s: Span) -> Zipkin_Proto3_Span {
        var p = Zipkin_Proto3_Span()
        p.traceID = s.traceID.high == 0 ? Data(s.traceID.bytes[8...]) : Data(s.traceID.bytes)
        if let parent = s.parentSpanID { p.parentID = Data(parent.bytes) }
        p.id = Data(s.spanID.bytes)
        switch s.kind {
        case .client: p.kind = .client
        case .server: p.kind = .server
        case .producer: p.kind = .producer
        case .consumer: p.kind = .consumer
        case .internal, .unspecified: p.kind = .spanKindUnspecified
        }
        p.name = s.name
        p.timestamp = Micros.floor(s.startTimeNanos)
        p.duration = Micros.ceil(s.durationNanos)
        var local = s.localEndpoint ?? Endpoint()
        local.serviceName = s.serviceName.isEmpty ? nil : s.serviceName
        if !local.isEmpty { p.localEndpoint = endpointMessage(local) }
        if let r = s.remoteEndpoint, !r.isEmpty { p.remoteEndpoint = endpointMessage(r) }
        p.annotations = s.events.map { e in
            var a = Zipkin_Proto3_Annotation()
            a.timestamp = Micros.floor(e.timeNanos)
            a.value = ZipkinJSON.annotationValue(e)
            return a
        }
        var tags = [String: String]()
        for a in s.attributes where tags[a.key] == nil { tags[a.key] = a.value.description }
        if s.status.code == .error && tags["error"] == nil {
            if tags["otel.status_code"] == nil { tags["otel.status_code"] = "ERROR" }
            tags["error"] = s.status.message ?? ""
        }
        p.tags = tags
        p.debug = s.debug
        p.shared = s.shared
        return p
    }


    private static func endpointMessage(_ e: Endpoint) -> Zipkin_Proto3_Endpoint {
        var m = Zipkin_Proto3_Endpoint()
        if let s = e.serviceName { m.serviceName = s }
        if let v4 = e.ipv4, let b = IPAddress.ipv4Bytes(v4) { m.ipv4 = Data(b) }
        if let v6 = e.ipv6, let b = IPAddress.ipv6Bytes(v6) { m.ipv6 = Data(b) }
        if let port = e.port, port > 0, port <= 65535 { m.port = Int32(port) }
        return m
    }
}
