import TraceModel

/// The compact, versioned binary form of a `Span` stored as the SQLite payload.
///
/// Layout (version 1), all integers little-endian:
/// ```
/// u8 version(=1) | u8 flags | u8 kind | u8 statusCode
/// u64 traceHigh | u64 traceLow | u64 spanID | [u64 parentSpanID]
/// str name | varint start | varint duration | str service
/// attrs resource | attrs attributes | events | links
/// [str statusMessage] [endpoint local] [endpoint remote] [str traceState] [scope]
/// ```
/// `str` = varint byte length + UTF-8; `attrs` = varint count + (str key, value); a value is a tag byte
/// then its payload (arrays nest, at most `maxDepth` deep). Decoding validates every length, count,
/// enum and UTF-8 sequence and throws `SpanRecordCodec.DecodingError` on anything malformed.
public enum SpanRecordCodec {
    public static let version: UInt8 = 1
    static let maxDepth = 16

    public struct DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var offset: Int
        public var description: String { "corrupt span record at byte \(offset): \(reason)" }
    }

    // Span flags.
    private static let fParent: UInt8 = 1 << 0
    private static let fDebug: UInt8 = 1 << 1
    private static let fShared: UInt8 = 1 << 2
    private static let fLocal: UInt8 = 1 << 3
    private static let fRemote: UInt8 = 1 << 4
    private static let fTraceState: UInt8 = 1 << 5
    private static let fScope: UInt8 = 1 << 6
    private static let fStatusMessage: UInt8 = 1 << 7

    // Attribute value tags.
    private static let tString: UInt8 = 0
    private static let tBoolFalse: UInt8 = 1
    private static let tBoolTrue: UInt8 = 2
    private static let tInt: UInt8 = 3
    private static let tDouble: UInt8 = 4
    private static let tBytes: UInt8 = 5
    private static let tArray: UInt8 = 6

    // MARK: Encoding

    public static func encode(_ span: Span) -> [UInt8] {
        var w = Writer()
        w.bytes.reserveCapacity(128 + span.name.utf8.count + span.attributes.count * 32)
        var flags: UInt8 = 0
        if span.parentSpanID != nil { flags |= fParent }
        if span.debug { flags |= fDebug }
        if span.shared { flags |= fShared }
        if span.localEndpoint != nil { flags |= fLocal }
        if span.remoteEndpoint != nil { flags |= fRemote }
        if span.traceState != nil { flags |= fTraceState }
        if span.scope != nil { flags |= fScope }
        if span.status.message != nil { flags |= fStatusMessage }
        w.u8(version)
        w.u8(flags)
        w.u8(span.kind.rawValue)
        w.u8(span.status.code.rawValue)
        w.u64(span.traceID.high)
        w.u64(span.traceID.low)
        w.u64(span.spanID.value)
        if let p = span.parentSpanID { w.u64(p.value) }
        w.string(span.name)
        w.varint(span.startTimeNanos)
        w.varint(span.durationNanos)
        w.string(span.serviceName)
        w.attributes(span.resource)
        w.attributes(span.attributes)
        w.varint(UInt64(span.events.count))
        for e in span.events {
            w.varint(e.timeNanos)
            w.string(e.name)
            w.attributes(e.attributes)
        }
        w.varint(UInt64(span.links.count))
        for l in span.links {
            w.u64(l.traceID.high)
            w.u64(l.traceID.low)
            w.u64(l.spanID.value)
            if let ts = l.traceState {
                w.u8(1)
                w.string(ts)
            } else {
                w.u8(0)
            }
            w.attributes(l.attributes)
        }
        if let m = span.status.message { w.string(m) }
        if let e = span.localEndpoint { w.endpoint(e) }
        if let e = span.remoteEndpoint { w.endpoint(e) }
        if let ts = span.traceState { w.string(ts) }
        if let s = span.scope {
            w.string(s.name)
            if let v = s.version {
                w.u8(1)
                w.string(v)
            } else {
                w.u8(0)
            }
        }
        return w.bytes
    }

    struct Writer {
        var bytes: [UInt8] = []

        mutating func u8(_ v: UInt8) { bytes.append(v) }

        mutating func u64(_ v: UInt64) {
            withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) }
        }

        mutating func varint(_ value: UInt64) {
            var v = value
            while v >= 0x80 {
                bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
                v >>= 7
            }
            bytes.append(UInt8(v))
        }

        mutating func string(_ s: String) {
            var s = s
            s.withUTF8 { utf8 in
                varint(UInt64(utf8.count))
                bytes.append(contentsOf: utf8)
            }
        }

        mutating func attributes(_ attrs: [Attribute]) {
            varint(UInt64(attrs.count))
            for a in attrs {
                string(a.key)
                value(a.value)
            }
        }

        mutating func value(_ v: AttributeValue) {
            switch v {
            case .string(let s):
                u8(tString)
                string(s)
            case .bool(let b):
                u8(b ? tBoolTrue : tBoolFalse)
            case .int(let i):
                u8(tInt)
                varint(UInt64(bitPattern: (i << 1) ^ (i >> 63)))  // zigzag
            case .double(let d):
                u8(tDouble)
                u64(d.bitPattern)
            case .bytes(let b):
                u8(tBytes)
                varint(UInt64(b.count))
                bytes.append(contentsOf: b)
            case .array(let values):
                u8(tArray)
                varint(UInt64(values.count))
                for v in values { value(v) }
            }
        }

        mutating func endpoint(_ e: Endpoint) {
            var f: UInt8 = 0
            if e.serviceName != nil { f |= 1 }
            if e.ipv4 != nil { f |= 2 }
            if e.ipv6 != nil { f |= 4 }
            if e.port != nil { f |= 8 }
            u8(f)
            if let s = e.serviceName { string(s) }
            if let s = e.ipv4 { string(s) }
            if let s = e.ipv6 { string(s) }
            if let p = e.port {
                let i = Int64(p)
                varint(UInt64(bitPattern: (i << 1) ^ (i >> 63)))
            }
        }
    }

    // MARK: Decoding

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> Span {
        let result = bytes.withUnsafeBytes { buffer -> Result<Span, DecodingError> in
            do throws(DecodingError) { return .success(try decode(buffer: buffer)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    /// Decodes from borrowed memory (for example a SQLite blob that is not copied).
    public static func decode(buffer: UnsafeRawBufferPointer) throws(DecodingError) -> Span {
        var r = Reader(buffer: buffer)
        let v = try r.u8()
        guard v == version else { throw r.error("unsupported version \(v)") }
        let flags = try r.u8()
        let kindRaw = try r.u8()
        guard let kind = SpanKind(rawValue: kindRaw) else { throw r.error("bad span kind \(kindRaw)") }
        let codeRaw = try r.u8()
        guard let code = SpanStatus.Code(rawValue: codeRaw) else { throw r.error("bad status code \(codeRaw)") }
        let traceID = TraceID(high: try r.u64(), low: try r.u64())
        let spanID = try r.spanID()
        let parent: SpanID? = flags & fParent != 0 ? try r.spanID() : nil
        let name = try r.string()
        let start = try r.varint()
        let duration = try r.varint()
        let service = try r.string()
        let resource = try r.attributes()
        let attributes = try r.attributes()
        let eventCount = try r.count(minimumBytesEach: 3)
        var events: [SpanEvent] = []
        events.reserveCapacity(eventCount)
        for _ in 0..<eventCount {
            let t = try r.varint()
            let n = try r.string()
            events.append(SpanEvent(timeNanos: t, name: n, attributes: try r.attributes()))
        }
        let linkCount = try r.count(minimumBytesEach: 26)
        var links: [SpanLink] = []
        links.reserveCapacity(linkCount)
        for _ in 0..<linkCount {
            let tid = TraceID(high: try r.u64(), low: try r.u64())
            let sid = try r.spanID()
            let ts = try r.optionalString()
            links.append(SpanLink(traceID: tid, spanID: sid, traceState: ts, attributes: try r.attributes()))
        }
        let message: String? = flags & fStatusMessage != 0 ? try r.string() : nil
        let local: Endpoint? = flags & fLocal != 0 ? try r.endpoint() : nil
        let remote: Endpoint? = flags & fRemote != 0 ? try r.endpoint() : nil
        let traceState: String? = flags & fTraceState != 0 ? try r.string() : nil
        var scope: InstrumentationScope?
        if flags & fScope != 0 {
            let n = try r.string()
            scope = InstrumentationScope(name: n, version: try r.optionalString())
        }
        guard r.offset == buffer.count else { throw r.error("\(buffer.count - r.offset) trailing bytes") }
        return Span(
            traceID: traceID, spanID: spanID, parentSpanID: parent, kind: kind, name: name,
            startTimeNanos: start, durationNanos: duration, serviceName: service,
            resource: resource, attributes: attributes, events: events, links: links,
            status: SpanStatus(code: code, message: message),
            localEndpoint: local, remoteEndpoint: remote, traceState: traceState, scope: scope,
            debug: flags & fDebug != 0, shared: flags & fShared != 0)
    }

    struct Reader {
        let buffer: UnsafeRawBufferPointer
        var offset = 0

        init(buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

        var remaining: Int { buffer.count - offset }

        func error(_ reason: String) -> DecodingError { DecodingError(reason: reason, offset: offset) }

        mutating func u8() throws(DecodingError) -> UInt8 {
            guard offset < buffer.count else { throw error("unexpected end") }
            defer { offset += 1 }
            return buffer[offset]
        }

        mutating func u64() throws(DecodingError) -> UInt64 {
            guard remaining >= 8 else { throw error("unexpected end") }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(buffer[offset + i]) << (8 * UInt64(i)) }
            offset += 8
            return v
        }

        mutating func spanID() throws(DecodingError) -> SpanID {
            guard let id = SpanID(try u64()) else { throw error("zero span id") }
            return id
        }

        mutating func varint() throws(DecodingError) -> UInt64 {
            var result: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                let b = try u8()
                if shift == 63 && b > 1 { throw error("varint overflow") }
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
                if shift > 63 { throw error("varint too long") }
            }
        }

        mutating func zigzag() throws(DecodingError) -> Int64 {
            let u = try varint()
            return Int64(bitPattern: u >> 1) ^ -Int64(bitPattern: u & 1)
        }

        /// A length or count that cannot exceed what is left (each element needs at least that many bytes).
        mutating func count(minimumBytesEach: Int) throws(DecodingError) -> Int {
            let c = try varint()
            guard c <= UInt64(remaining / max(minimumBytesEach, 1)) else { throw error("count \(c) exceeds record") }
            return Int(c)
        }

        mutating func rawBytes() throws(DecodingError) -> UnsafeRawBufferPointer {
            let n = try count(minimumBytesEach: 1)
            defer { offset += n }
            return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + n])
        }

        mutating func string() throws(DecodingError) -> String {
            let start = offset
            let raw = try rawBytes()
            guard let s = String(validating: raw.assumingMemoryBound(to: UInt8.self), as: UTF8.self) else {
                throw DecodingError(reason: "invalid UTF-8", offset: start)
            }
            return s
        }

        mutating func optionalString() throws(DecodingError) -> String? {
            switch try u8() {
            case 0: return nil
            case 1: return try string()
            case let b: throw error("bad optional marker \(b)")
            }
        }

        mutating func attributes() throws(DecodingError) -> [Attribute] {
            let n = try count(minimumBytesEach: 2)
            var out: [Attribute] = []
            out.reserveCapacity(n)
            for _ in 0..<n {
                let key = try string()
                out.append(Attribute(key, try value(depth: 0)))
            }
            return out
        }

        mutating func value(depth: Int) throws(DecodingError) -> AttributeValue {
            let tag = try u8()
            switch tag {
            case tString: return .string(try string())
            case tBoolFalse: return .bool(false)
            case tBoolTrue: return .bool(true)
            case tInt: return .int(try zigzag())
            case tDouble: return .double(Double(bitPattern: try u64()))
            case tBytes: return .bytes(Array(try rawBytes()))
            case tArray:
                guard depth < SpanRecordCodec.maxDepth else { throw error("arrays nested too deeply") }
                let n = try count(minimumBytesEach: 1)
                var values: [AttributeValue] = []
                values.reserveCapacity(n)
                for _ in 0..<n { values.append(try value(depth: depth + 1)) }
                return .array(values)
            default:
                throw error("bad value tag \(tag)")
            }
        }

        mutating func endpoint() throws(DecodingError) -> Endpoint {
            let f = try u8()
            guard f & ~0x0F == 0 else { throw error("bad endpoint flags \(f)") }
            var e = Endpoint()
            if f & 1 != 0 { e.serviceName = try string() }
            if f & 2 != 0 { e.ipv4 = try string() }
            if f & 4 != 0 { e.ipv6 = try string() }
            if f & 8 != 0 {
                let p = try zigzag()
                guard let port = Int(exactly: p) else { throw error("bad port") }
                e.port = port
            }
            return e
        }
    }
}
