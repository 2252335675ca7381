import TraceModel
import TraceWire

/// How spans travel to a collector. Each span is encoded on its own, once, when it finishes;
/// a batch is those entries framed. The buffer between the request path and the exporter then
/// holds compact bytes (one allocation per batch) rather than span models (dozens each), and
/// the export task only frames and sends.
public enum SpanWireFormat: String, Sendable, CaseIterable {
    /// Zipkin v2 JSON: `[span,span,…]`.
    case zipkinJSON
    /// Zipkin v2 proto3 (`ListOfSpans`): each entry a `Span` message, framed as field 1.
    /// Smaller than JSON (ids as bytes, no member names) and cheaper at both ends.
    case zipkinProto
    /// OTLP/HTTP protobuf. Every entry is a whole `ExportTraceServiceRequest` holding one
    /// ResourceSpans with one span; serialized protobuf messages concatenate into their merge,
    /// and merging appends repeated fields, so a batch is its entries back to back.
    case otlpProtobuf

    public var contentType: String {
        switch self {
        case .zipkinJSON: return "application/json"
        case .zipkinProto, .otlpProtobuf: return "application/x-protobuf"
        }
    }

    /// One span as a batch entry.
    public func encode(_ span: Span) -> [UInt8] {
        switch self {
        case .zipkinJSON:
            var w = JSONWriter(capacity: 1536)
            ZipkinJSON.write(span, to: &w)
            return w.bytes
        case .zipkinProto:
            let w = ProtoWriter(capacity: 1024)
            ZipkinProto.write(span, to: w)
            return w.bytes
        case .otlpProtobuf:
            return OTLPProto.encode([span])
        }
    }

    var prefix: UInt8? { self == .zipkinJSON ? UInt8(ascii: "[") : nil }
    var separator: UInt8? { self == .zipkinJSON ? UInt8(ascii: ",") : nil }
    var suffix: UInt8? { self == .zipkinJSON ? UInt8(ascii: "]") : nil }
}

/// A framed batch, ready to send as one request body.
public struct EncodedSpanBatch: Sendable {
    public let format: SpanWireFormat
    public private(set) var body: [UInt8]
    public private(set) var spanCount: Int

    public init(format: SpanWireFormat, reservingCapacity capacity: Int = 0) {
        self.format = format
        self.body = []
        self.spanCount = 0
        body.reserveCapacity(capacity)
        if let prefix = format.prefix { body.append(prefix) }
    }

    /// A batch of `spans`, each encoded as an entry.
    public init(format: SpanWireFormat, spans: [Span]) {
        self.init(format: format)
        for span in spans { append(entry: format.encode(span)) }
        close()
    }

    /// Appends one entry made by `format.encode` (or an equivalent writer).
    public mutating func append(entry: [UInt8]) {
        entry.withUnsafeBytes { append(entry: $0) }
    }

    /// Appends one entry from a writer's buffer, lent without a copy.
    public mutating func append(entry: UnsafeRawBufferPointer) {
        if spanCount > 0, let separator = format.separator { body.append(separator) }
        if format == .zipkinProto {
            // `ListOfSpans.spans` is field 1, length-delimited.
            body.append(0x0A)
            var length = UInt64(entry.count)
            while length >= 0x80 {
                body.append(UInt8(truncatingIfNeeded: length) | 0x80)
                length >>= 7
            }
            body.append(UInt8(length))
        }
        body.append(contentsOf: entry)
        spanCount += 1
    }

    /// Finishes the framing; call once, after the last entry.
    public mutating func close() {
        if let suffix = format.suffix { body.append(suffix) }
    }

    /// The spans back (in-memory exporters in tests, and anything that inspects a batch).
    public func decode() throws(WireError) -> [Span] {
        switch format {
        case .zipkinJSON: return try ZipkinJSON.decode(body).spans
        case .zipkinProto: return try ZipkinProto.decode(body).spans
        case .otlpProtobuf: return try OTLPProto.decode(body).spans
        }
    }
}
