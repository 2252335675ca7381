#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SwiftProtobuf
import TraceModel

/// OTLP/protobuf: `ExportTraceServiceRequest` in, `ExportTraceServiceResponse` out.
public enum OTLPProto {
    package typealias PSpan = Opentelemetry_Proto_Trace_V1_Span
    package typealias PAnyValue = Opentelemetry_Proto_Common_V1_AnyValue
    package typealias PKeyValue = Opentelemetry_Proto_Common_V1_KeyValue

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

    /// kvlist values become a JSON object string; an empty value becomes "".
    package static func attributeValue(_ v: PAnyValue) -> AttributeValue {
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
