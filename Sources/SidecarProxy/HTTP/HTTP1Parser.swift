#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1

/// Why bytes on a connection could not be read as HTTP/1.1. A request answers it with
/// `rejection` (400 or 431); in an upstream's response it is a protocol error (UPE).
enum HTTPWireError: Error, Equatable, CustomStringConvertible {
    /// Not HTTP/1.1 syntax; says what and, for header fields, on which line.
    case malformed(String)
    case headTooLarge
    /// Well-formed, but refused by the framing rules (`RequestRules`).
    case refused(RequestRejection)

    var rejection: RequestRejection {
        switch self {
        case .malformed(let what): return .badRequest("malformed request: " + what)
        case .headTooLarge: return .headersTooLarge
        case .refused(let rejection): return rejection
        }
    }

    var description: String {
        switch self {
        case .malformed(let what): return what
        case .headTooLarge: return "header block too large"
        case .refused(let rejection): return rejection.reason
        }
    }
}

/// Reads HTTP/1.1 requests from a connection's bytes, incrementally, into the parts the proxy
/// handles. In place of NIO's llhttp decoder plus the validation stage behind it: heads are
/// parsed straight from the buffer, body bytes are passed on as slices of it (never copied), and
/// no part crosses a pipeline stage as a type-erased `NIOAny` (the casts were a tenth of the
/// sidecar's instructions). Framing and smuggling rules are `RequestRules`, as before.
struct HTTPRequestParser {
    private var reader: HTTPMessageReader

    init(maxHeadBytes: Int) {
        reader = HTTPMessageReader(maxHeadBytes: maxHeadBytes)
    }

    /// Consumes what it can of `input` (a partial head is kept for the next call), calling `emit`
    /// per part in order. After it throws, the connection's framing is lost: stop reading.
    mutating func parse(_ input: inout ByteBuffer, emit: (HTTPServerRequestPart) -> Void) throws(HTTPWireError) {
        try reader.run(&input, head: { block throws(HTTPWireError) in
            let head = try Self.requestHead(&block)
            emit(.head(head.head))
            return head.framing
        }, body: { emit(.body($0)) }, end: { emit(.end($0)) })
    }

    /// Bytes held for an unfinished message (a head still arriving, or a body in progress).
    var midMessage: Bool { reader.midMessage }

    private static func requestHead(_ block: inout HeadBlock) throws(HTTPWireError) -> (head: HTTPRequestHead, framing: HTTPMessageReader.Framing) {
        // method SP request-target SP HTTP-version
        let line = block.startLine
        let bytes = block.bytes
        var sp1 = line.lowerBound
        while sp1 < line.upperBound, HTTPSyntax.isTokenByte(bytes[sp1]) { sp1 += 1 }
        guard sp1 > line.lowerBound, sp1 < line.upperBound, bytes[sp1] == UInt8(ascii: " ") else {
            throw .malformed("request line is not 'METHOD target HTTP/1.1' (invalid method)")
        }
        var sp2 = sp1 + 1
        while sp2 < line.upperBound, bytes[sp2] > 0x20, bytes[sp2] < 0x7F { sp2 += 1 }
        guard sp2 > sp1 + 1, sp2 < line.upperBound, bytes[sp2] == UInt8(ascii: " ") else {
            throw .malformed("request line is not 'METHOD target HTTP/1.1' (invalid request target)")
        }
        guard let version = HTTPSyntax.version(bytes, (sp2 + 1)..<line.upperBound) else { throw .malformed("unsupported HTTP version") }
        var framing = FramingFields()
        let headers = try block.fields(&framing)
        let head = HTTPRequestHead(
            version: version, method: HTTPSyntax.method(bytes, line.lowerBound..<sp1), uri: HTTPSyntax.string(bytes, (sp1 + 1)..<sp2),
            headers: headers)
        if let problem = RequestRules.check(head, maxHeaderBytes: Int.max) { throw .refused(problem) }
        // RequestRules has refused every ambiguous combination by now.
        return (head, framing.framing(untilCloseWithoutLength: false) ?? .none)
    }
}

/// Reads HTTP/1.1 responses from an upstream connection. A response's framing depends on the
/// request it answers (nothing follows the head of a HEAD response), so each request's method is
/// noted as it is sent. Interim responses (1xx other than 101) are dropped, as NIO's decoder did:
/// the proxy answers `Expect: 100-continue` itself.
struct HTTPResponseParser {
    private var reader: HTTPMessageReader
    private var methods = CircularBuffer<HTTPMethod>()
    private let dropHopByHop: Bool

    /// `dropHopByHop`: leave hop-by-hop fields out of the heads (a proxy forwards none of them;
    /// framing and keep-alive are still read from them).
    init(maxHeadBytes: Int = 256 * 1024, dropHopByHop: Bool = false) {
        reader = HTTPMessageReader(maxHeadBytes: maxHeadBytes)
        self.dropHopByHop = dropHopByHop
    }

    /// `HTTP-version SP status-code SP [reason-phrase]`; some servers leave out the last space.
    private static func statusLine(_ block: HeadBlock) throws(HTTPWireError) -> (HTTPVersion, HTTPResponseStatus) {
        let line = block.startLine
        let bytes = block.bytes
        let s = line.lowerBound
        let isDigit = { (c: UInt8) in c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        guard line.count >= 12, let version = HTTPSyntax.version(bytes, s..<(s + 8)), bytes[s + 8] == UInt8(ascii: " "),
              isDigit(bytes[s + 9]), isDigit(bytes[s + 10]), isDigit(bytes[s + 11]),
              line.count == 12 || bytes[s + 12] == UInt8(ascii: " ")
        else { throw .malformed("status line is not 'HTTP/1.1 CODE reason'") }
        let code = Int(bytes[s + 9] - 48) * 100 + Int(bytes[s + 10] - 48) * 10 + Int(bytes[s + 11] - 48)
        guard code >= 100 else { throw .malformed("status code \(code) is below 100") }
        var reason = ""
        if line.count > 13 {
            let range = (s + 13)..<line.upperBound
            guard HTTPSyntax.isFieldValue(bytes, range) else { throw .malformed("control character in the reason phrase") }
            reason = HTTPSyntax.string(bytes, range)
        }
        return (version, HTTPResponseStatus(statusCode: code, reasonPhrase: reason))
    }

    /// What delimits a final response's body: nothing after the head of a HEAD response, 1xx,
    /// 204 or 304; otherwise its fields, settled before the head goes out (a response whose
    /// framing contradicts itself is refused whole: the client gets a clean 503 UPE, not half a
    /// response).
    private static func framing(code: UInt, method: HTTPMethod?, _ fields: FramingFields) throws(HTTPWireError) -> HTTPMessageReader.Framing {
        if method == .HEAD || code < 200 || code == 204 || code == 304 { return .none }
        guard let declared = fields.framing(untilCloseWithoutLength: true) else {
            throw .malformed("response framing: both Content-Length and Transfer-Encoding, or a duplicate or invalid Content-Length")
        }
        return declared
    }

    /// A body read until the close, or a switch of protocols, leaves nothing to reuse.
    private static func keepAlive(_ version: HTTPVersion, code: UInt, _ framing: HTTPMessageReader.Framing, _ fields: FramingFields) -> Bool {
        fields.keepAlive(version) && framing != .untilClose && code != 101
    }

    private static func isInterim(_ code: UInt) -> Bool { code >= 100 && code < 200 && code != 101 }

    /// Notes a request sent, for `parse(_:emit:)`.
    mutating func requestSent(_ method: HTTPMethod) {
        methods.append(method)
    }

    /// Reads responses to the requests noted with `requestSent`, in order.
    mutating func parse(_ input: inout ByteBuffer, emit: (HTTPClientResponsePart) -> Void) throws(HTTPWireError) {
        var waiting = methods  // taken out while the parse runs (it is part of `self`)
        methods = []
        defer { methods = waiting }
        try parse(&input, requestMethod: { waiting.popFirst() }) { part, _ in emit(part) }
    }

    /// Reads responses, asking `requestMethod` for the method of the request each final response
    /// answers. Callers that may send the next request from inside `emit` (a proxy reusing the
    /// connection as soon as a response ends) keep that queue themselves: noting a request here
    /// would touch the parser while it runs. With each head, `emit` is told whether the
    /// connection may carry another request after it (read from the Connection header as it was
    /// parsed, where NIO's `isKeepAlive` scans the headers again); meaningless with other parts.
    mutating func parse(
        _ input: inout ByteBuffer, requestMethod: () -> HTTPMethod?, emit: (HTTPClientResponsePart, Bool) -> Void
    ) throws(HTTPWireError) {
        let drop = dropHopByHop
        var keepAlive = true
        try reader.run(&input, head: { block throws(HTTPWireError) in
            let (version, status) = try Self.statusLine(block)
            var fields = FramingFields()
            let headers = try block.fields(&fields, droppingHopByHop: drop)
            if Self.isInterim(status.code) { return .skip }  // the real response follows for the same request
            let framing = try Self.framing(code: status.code, method: requestMethod(), fields)
            keepAlive = Self.keepAlive(version, code: status.code, framing, fields)
            emit(.head(HTTPResponseHead(version: version, status: status, headers: headers)), keepAlive)
            return framing
        }, body: { emit(.body($0), keepAlive) }, end: { emit(.end($0), keepAlive) })
    }

    /// As `parse(_:requestMethod:emit:)`, with heads as a proxy forwards them: the end-to-end
    /// fields stay wire bytes (`ForwardedResponseHead`), never split into strings.
    mutating func parseForwarding(
        _ input: inout ByteBuffer, allocator: ByteBufferAllocator, requestMethod: () -> HTTPMethod?,
        emit: (UpstreamResponsePart, Bool) -> Void
    ) throws(HTTPWireError) {
        var keepAlive = true
        try reader.run(&input, head: { block throws(HTTPWireError) in
            let (version, status) = try Self.statusLine(block)
            var fields = FramingFields()
            let forwarded = try block.forwardedFields(&fields, allocator: allocator)
            if Self.isInterim(status.code) { return .skip }
            let framing = try Self.framing(code: status.code, method: requestMethod(), fields)
            keepAlive = Self.keepAlive(version, code: status.code, framing, fields)
            let head = ForwardedResponseHead(version: version, status: status, fields: forwarded, contentLength: fields.contentLength)
            emit(.head(head), keepAlive)
            return framing
        }, body: { emit(.body($0), keepAlive) }, end: { emit(.end($0), keepAlive) })
    }

    /// The connection closed: a body that runs until close ends here; anything else unfinished
    /// was cut short.
    mutating func inputClosed(emit: (HTTPClientResponsePart) -> Void) throws(HTTPWireError) {
        if try inputClosed() { emit(.end(nil)) }
    }

    /// As `inputClosed(emit:)`: true when a body that runs until the close ended here.
    mutating func inputClosed() throws(HTTPWireError) -> Bool {
        switch reader.closeInput() {
        case .clean: return false
        case .endedBody: return true
        case .truncated: throw .malformed("response cut short by the connection closing")
        }
    }
}

/// A response head as a proxy forwards it: the status line's parts, and the end-to-end fields as
/// wire bytes, never split into strings. Content-Length is kept apart (the writer frames the
/// body from it); hop-by-hop fields are already gone.
struct ForwardedResponseHead {
    var version: HTTPVersion
    var status: HTTPResponseStatus
    /// `Name: value` lines, each ending in CRLF.
    var fields: ByteBuffer
    var contentLength: Int?
}

/// What an upstream connection hands the proxy.
enum UpstreamResponsePart {
    case head(ForwardedResponseHead)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

/// A complete head or trailer block (lines up to the empty one), read line by line in one pass:
/// every check is made on the bytes as each line is read, and only the strings kept are built.
/// Valid only inside the call that hands it out (it points into the connection's buffer).
struct HeadBlock {
    let bytes: UnsafeRawBufferPointer
    private var position = 0
    private var lineNumber = 0
    /// The first line (empty range for a trailer block, which has none).
    private(set) var startLine: Range<Int> = 0..<0

    init(_ bytes: UnsafeRawBufferPointer, hasStartLine: Bool) {
        self.bytes = bytes
        if hasStartLine, let line = nextLine() { startLine = line }
    }

    /// The next line without its line break; nil at the empty line that ends the block.
    private mutating func nextLine() -> Range<Int>? {
        let start = position
        guard start < bytes.count else { return nil }
        var end = HTTPSyntax.index(of: UInt8(ascii: "\n"), in: bytes, from: start) ?? bytes.count
        position = end + 1
        lineNumber += 1
        if end > start, bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        return end == start ? nil : start..<end
    }

    /// The header fields after the start line, as NIO builds them (names as sent, values without
    /// surrounding whitespace), noting the ones that frame the body.
    mutating func fields(_ framing: inout FramingFields, droppingHopByHop: Bool = false) throws(HTTPWireError) -> HTTPHeaders {
        let bytes = self.bytes  // read inside the walk, which advances `self`
        var fields: [(String, String)] = []
        fields.reserveCapacity(16)
        try forEachField(&framing) { name, value, kind in
            if droppingHopByHop, kind.isHopByHop { return }
            fields.append((FieldName.interned(bytes, name) ?? HTTPSyntax.string(bytes, name), HTTPSyntax.string(bytes, value)))
        }
        if droppingHopByHop, !framing.connectionListed.isEmpty {
            let listed = framing.connectionListed
            fields.removeAll { field in listed.contains { field.0.utf8.count == $0.utf8.count && field.0.lowercased() == $0.lowercased() } }
        }
        return HTTPHeaders(fields)
    }

    /// The end-to-end fields as a proxy forwards them, as wire bytes (`Name: value` and CRLF
    /// each, the name as sent and the value without surrounding whitespace): hop-by-hop fields,
    /// those named by Connection, and Content-Length (the writer frames the body) left out.
    mutating func forwardedFields(_ framing: inout FramingFields, allocator: ByteBufferAllocator) throws(HTTPWireError) -> ByteBuffer {
        let bytes = self.bytes  // read inside the walk, which advances `self`
        var kept: [(name: Range<Int>, value: Range<Int>)] = []
        kept.reserveCapacity(16)
        try forEachField(&framing) { name, value, kind in
            if kind == .other { kept.append((name, value)) }
        }
        if !framing.connectionListed.isEmpty {
            let listed = framing.connectionListed.map { $0.lowercased() }
            kept.removeAll { field in listed.contains(HTTPSyntax.string(bytes, field.name).lowercased()) }
        }
        var size = 0
        for field in kept { size += field.name.count + field.value.count + 4 }
        var out = allocator.buffer(capacity: size)
        let source = bytes
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { target in
            var i = 0
            for field in kept {
                UnsafeMutableRawBufferPointer(rebasing: target[i..<(i + field.name.count)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: source[field.name]))
                i += field.name.count
                target[i] = UInt8(ascii: ":")
                target[i + 1] = UInt8(ascii: " ")
                i += 2
                UnsafeMutableRawBufferPointer(rebasing: target[i..<(i + field.value.count)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: source[field.value]))
                i += field.value.count
                target[i] = UInt8(ascii: "\r")
                target[i + 1] = UInt8(ascii: "\n")
                i += 2
            }
            return i
        }
        return out
    }

    /// Walks the header fields after the start line, checking each and noting the ones that
    /// frame the body; `body` gets the name and trimmed value ranges.
    private mutating func forEachField(
        _ framing: inout FramingFields, _ body: (Range<Int>, Range<Int>, FieldName.Kind) -> Void
    ) throws(HTTPWireError) {
        while let line = nextLine() {
            let first = bytes[line.lowerBound]
            if first == UInt8(ascii: " ") || first == UInt8(ascii: "\t") {
                throw .malformed("obsolete line folding on header line \(lineNumber)")
            }
            var colon = line.lowerBound
            while colon < line.upperBound, HTTPSyntax.isTokenByte(bytes[colon]) { colon += 1 }
            guard colon > line.lowerBound, colon < line.upperBound, bytes[colon] == UInt8(ascii: ":") else {
                throw .malformed("invalid header name on line \(lineNumber)")
            }
            var start = colon + 1
            var end = line.upperBound
            while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
            while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
            guard HTTPSyntax.isFieldValue(bytes, start..<end) else {
                throw .malformed("control character in header value on line \(lineNumber)")
            }
            let nameRange = line.lowerBound..<colon
            let kind = FieldName.kind(bytes, nameRange)
            framing.note(kind, bytes, start..<end)
            body(nameRange, start..<end, kind)
        }
    }
}

/// Header names recognized from their bytes, before (or instead of) building a string.
enum FieldName {
    /// What the parser itself acts on.
    enum Kind: Equatable {
        case other, connection, contentLength, transferEncoding, hopByHop

        /// Not forwarded by a proxy (RFC 9110 §7.6.1); Content-Length is end-to-end.
        var isHopByHop: Bool { self == .connection || self == .transferEncoding || self == .hopByHop }
    }

    /// Case-insensitive comparison with a lower-case ASCII constant.
    @inline(__always)
    static func equals(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ lower: StaticString) -> Bool {
        compare(bytes, range, lower, foldingCase: true)
    }

    /// Byte-for-byte comparison with a constant.
    @inline(__always)
    static func exactly(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ constant: StaticString) -> Bool {
        compare(bytes, range, constant, foldingCase: false)
    }

    @inline(__always)
    private static func compare(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, _ constant: StaticString, foldingCase: Bool) -> Bool {
        guard range.count == constant.utf8CodeUnitCount else { return false }
        let p = constant.utf8Start
        var k = 0
        for i in range {
            let c = bytes[i]
            if (foldingCase && c >= 65 && c <= 90 ? c | 0x20 : c) != p[k] { return false }
            k += 1
        }
        return true
    }

    /// By length first: most names are settled by it (the same names as `HopByHop.fixed`).
    static func kind(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Kind {
        switch range.count {
        case 2: return equals(bytes, range, "te") ? .hopByHop : .other
        case 7: return equals(bytes, range, "trailer") || equals(bytes, range, "upgrade") ? .hopByHop : .other
        case 10:
            if equals(bytes, range, "connection") { return .connection }
            return equals(bytes, range, "keep-alive") ? .hopByHop : .other
        case 14: return equals(bytes, range, "content-length") ? .contentLength : .other
        case 16: return equals(bytes, range, "proxy-connection") ? .hopByHop : .other
        case 17: return equals(bytes, range, "transfer-encoding") ? .transferEncoding : .other
        case 18: return equals(bytes, range, "proxy-authenticate") ? .hopByHop : .other
        case 19: return equals(bytes, range, "proxy-authorization") ? .hopByHop : .other
        default: return .other
        }
    }

    /// Common names, spelled exactly as sent, from string literals: no allocation and no
    /// reference counting later (the name strings were a fifth of the parser's cost).
    static func interned(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String? {
        let count = range.count
        guard count < common.count else { return nil }
        for candidate in common[count] where exactly(bytes, range, candidate.bytes) { return candidate.string }
        return nil
    }

    private static let common: [[(bytes: StaticString, string: String)]] = {
        let names: [(StaticString, String)] = [
            ("Host", "Host"), ("host", "host"), ("User-Agent", "User-Agent"), ("user-agent", "user-agent"),
            ("Accept", "Accept"), ("accept", "accept"), ("Accept-Encoding", "Accept-Encoding"), ("accept-encoding", "accept-encoding"),
            ("Accept-Language", "Accept-Language"), ("Content-Type", "Content-Type"), ("content-type", "content-type"),
            ("Content-Length", "Content-Length"), ("content-length", "content-length"), ("Date", "Date"), ("date", "date"),
            ("Server", "Server"), ("server", "server"), ("Last-Modified", "Last-Modified"), ("last-modified", "last-modified"),
            ("ETag", "ETag"), ("etag", "etag"), ("Accept-Ranges", "Accept-Ranges"), ("accept-ranges", "accept-ranges"),
            ("Cache-Control", "Cache-Control"), ("cache-control", "cache-control"), ("Vary", "Vary"), ("vary", "vary"),
            ("Authorization", "Authorization"), ("authorization", "authorization"), ("Cookie", "Cookie"), ("cookie", "cookie"),
            ("Location", "Location"), ("location", "location"), ("Expires", "Expires"), ("Content-Encoding", "Content-Encoding"),
            ("content-encoding", "content-encoding"), ("traceparent", "traceparent"), ("tracestate", "tracestate"),
            ("x-request-id", "x-request-id"), ("X-Request-Id", "X-Request-Id"), ("x-b3-traceid", "x-b3-traceid"),
            ("x-b3-spanid", "x-b3-spanid"), ("x-b3-parentspanid", "x-b3-parentspanid"), ("x-b3-sampled", "x-b3-sampled"),
            ("b3", "b3"), ("baggage", "baggage"), ("x-envoy-downstream-service-cluster", "x-envoy-downstream-service-cluster"),
            ("x-meshtrace-via", "x-meshtrace-via"),
        ]
        var table = [[(bytes: StaticString, string: String)]](repeating: [], count: 40)
        for (bytes, string) in names where bytes.utf8CodeUnitCount < table.count {
            table[bytes.utf8CodeUnitCount].append((bytes, string))
        }
        return table
    }()
}

/// The fields that delimit a body, noted while the head is read.
struct FramingFields {
    private var lengths = 0
    private var length: Int?
    private var invalidLength = false
    private var encodings = 0
    private var encoding = ""
    private var connectionClose = false
    private var connectionKeepAlive = false
    /// Names listed in `Connection` other than close and keep-alive (hop-by-hop by naming).
    private(set) var connectionListed: [Substring] = []

    /// The declared length, when there was exactly one valid Content-Length.
    var contentLength: Int? { lengths == 1 && !invalidLength ? length : nil }

    /// Whether the connection may carry another message after this one (NIO's rule: `close`
    /// wins, then `keep-alive`, then the version's default).
    func keepAlive(_ version: HTTPVersion) -> Bool {
        if connectionClose { return false }
        return connectionKeepAlive || (version.major == 1 && version.minor >= 1)
    }

    /// Notes a field from its bytes (no strings are built for the ones that only frame).
    mutating func note(_ kind: FieldName.Kind, _ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) {
        switch kind {
        case .connection:
            var tokenStart = value.lowerBound
            for i in value.lowerBound...value.upperBound where i == value.upperBound || bytes[i] == UInt8(ascii: ",") {
                var s = tokenStart
                var e = i
                while s < e, bytes[s] == 0x20 || bytes[s] == 0x09 { s += 1 }
                while e > s, bytes[e - 1] == 0x20 || bytes[e - 1] == 0x09 { e -= 1 }
                if FieldName.equals(bytes, s..<e, "close") {
                    connectionClose = true
                } else if FieldName.equals(bytes, s..<e, "keep-alive") {
                    connectionKeepAlive = true
                } else if e > s {
                    connectionListed.append(Substring(HTTPSyntax.string(bytes, s..<e)))
                }
                tokenStart = i + 1
            }
        case .contentLength:
            lengths += 1
            length = HTTPSyntax.contentLength(bytes, value)
            if length == nil { invalidLength = true }
        case .transferEncoding:
            encodings += 1
            encoding = HTTPSyntax.string(bytes, value)
        case .hopByHop, .other:
            break
        }
    }

    /// Body framing (RFC 9112 §6.3). Nil when the fields contradict each other: Content-Length
    /// with Transfer-Encoding, two of either, or a length that is not a number. A
    /// Transfer-Encoding that does not end in chunked runs until the connection closes
    /// (responses; `RequestRules` refuses it in requests).
    func framing(untilCloseWithoutLength: Bool) -> HTTPMessageReader.Framing? {
        if invalidLength || lengths > 1 || encodings > 1 || (lengths == 1 && encodings == 1) { return nil }
        if encodings == 1 {
            let last = encoding.split(separator: ",").last.map { $0.trimmingSpaces.lowercased() }
            return last == "chunked" ? .chunked : .untilClose
        }
        if let length { return length > 0 ? .length(length) : HTTPMessageReader.Framing.none }
        return untilCloseWithoutLength ? .untilClose : HTTPMessageReader.Framing.none
    }
}

enum HTTPSyntax {
    /// RFC 9110 tchar.
    @inline(__always)
    static func isTokenByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "^"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    /// The first `byte` at or after `from`, by `memchr` (line breaks were searched a byte at a
    /// time, twice per head).
    @inline(__always)
    static func index(of byte: UInt8, in bytes: UnsafeRawBufferPointer, from: Int) -> Int? {
        guard from < bytes.count, let base = bytes.baseAddress else { return nil }
        guard let found = memchr(base + from, Int32(byte), bytes.count - from) else { return nil }
        return UnsafeRawPointer(found) - base
    }

    /// Field-value bytes: visible ASCII, space, tab and obs-text; no other control characters.
    static func isFieldValue(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Bool {
        for i in range {
            let c = bytes[i]
            if c < 0x20 && c != 0x09 || c == 0x7F { return false }
        }
        return true
    }

    static func string(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// The common methods without building a string to look them up.
    static func method(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPMethod {
        switch range.count {
        case 3 where FieldName.exactly(bytes, range, "GET"): return .GET
        case 3 where FieldName.exactly(bytes, range, "PUT"): return .PUT
        case 4 where FieldName.exactly(bytes, range, "POST"): return .POST
        case 4 where FieldName.exactly(bytes, range, "HEAD"): return .HEAD
        case 6 where FieldName.exactly(bytes, range, "DELETE"): return .DELETE
        default: return HTTPMethod(rawValue: string(bytes, range))
        }
    }

    /// `HTTP/1.x`. Other major versions are not HTTP/1 messages at all.
    static func version(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPVersion? {
        guard range.count == 8, FieldName.exactly(bytes, range.lowerBound..<(range.lowerBound + 7), "HTTP/1.") else { return nil }
        let last = bytes[range.lowerBound + 7]
        guard last >= UInt8(ascii: "0"), last <= UInt8(ascii: "9") else { return nil }
        return last == UInt8(ascii: "1") ? .http1_1 : HTTPVersion(major: 1, minor: Int(last - UInt8(ascii: "0")))
    }

    /// Digits only (surrounding whitespace is already trimmed), at most 18 of them.
    static func contentLength(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, range.count <= 18 else { return nil }
        var n = 0
        for i in range {
            let c = bytes[i]
            guard c >= 48 && c <= 57 else { return nil }
            n = n * 10 + Int(c - 48)
        }
        return n
    }
}

/// The message-independent part of HTTP/1.1 reading: finding heads, and delimiting bodies by
/// length, by chunks or by the connection closing. A head that arrives over several reads is
/// gathered in `pending`; everything else is read in place.
struct HTTPMessageReader {
    enum Framing: Equatable {
        case none
        case length(Int)
        case chunked
        case untilClose
        /// An interim response: drop it and read the next head.
        case skip
    }

    private enum State {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailers
        case untilClose
        case failed
    }

    private let maxHeadBytes: Int
    private var state = State.head
    /// Unfinished head or chunk-size/trailer line bytes from earlier reads.
    private var pending: [UInt8] = []

    init(maxHeadBytes: Int) {
        self.maxHeadBytes = maxHeadBytes
    }

    var midMessage: Bool {
        if case .head = state { return !pending.isEmpty }
        if case .failed = state { return false }
        return true
    }

    enum CloseOutcome { case clean, endedBody, truncated }

    mutating func closeInput() -> CloseOutcome {
        switch state {
        case .untilClose:
            state = .head
            return .endedBody
        case .head:
            return pending.isEmpty ? .clean : .truncated
        case .failed:
            return .clean
        default:
            return .truncated
        }
    }

    mutating func run(
        _ input: inout ByteBuffer,
        head: (inout HeadBlock) throws(HTTPWireError) -> Framing,
        body: (ByteBuffer) -> Void,
        end: (HTTPHeaders?) -> Void
    ) throws(HTTPWireError) {
        do {
            try step(&input, head: head, body: body, end: end)
        } catch {
            state = .failed
            pending = []
            throw error
        }
    }

    private mutating func step(
        _ input: inout ByteBuffer,
        head: (inout HeadBlock) throws(HTTPWireError) -> Framing,
        body: (ByteBuffer) -> Void,
        end: (HTTPHeaders?) -> Void
    ) throws(HTTPWireError) {
        while input.readableBytes > 0 {
            switch state {
            case .failed:
                input.moveReaderIndex(to: input.writerIndex)
                return
            case .head:
                guard let framing = try readBlock(&input, limit: maxHeadBytes, trailers: false, head) else { return }
                switch framing {
                case .none: end(nil)
                case .skip: break
                case .length(let n): state = .body(remaining: n)
                case .chunked: state = .chunkSize
                case .untilClose: state = .untilClose
                }
            case .body(let remaining):
                let n = min(remaining, input.readableBytes)
                if let slice = input.readSlice(length: n) { body(slice) }
                if n == remaining {
                    state = .head
                    end(nil)
                } else {
                    state = .body(remaining: remaining - n)
                }
            case .untilClose:
                if let slice = input.readSlice(length: input.readableBytes) { body(slice) }
            case .chunkSize:
                guard let line = try takeLine(&input, limit: 1024, what: "chunk size line") else { return }
                let size = try Self.chunkSize(line)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let n = min(remaining, input.readableBytes)
                if let slice = input.readSlice(length: n) { body(slice) }
                state = n == remaining ? .chunkDataEnd : .chunkData(remaining: remaining - n)
            case .chunkDataEnd:
                // Exactly CRLF: with a bare LF accepted here, a chunk one byte short would take
                // in the CR and the two ends of a connection could disagree on the body.
                guard let line = try takeLine(&input, limit: 0, what: "chunk data end", strictCRLF: true) else { return }
                guard line.isEmpty else { throw .malformed("chunk data longer than its size") }
                state = .chunkSize
            case .trailers:
                let read = { (block: inout HeadBlock) throws(HTTPWireError) -> HTTPHeaders in
                    var unused = FramingFields()
                    return try block.fields(&unused)
                }
                guard let trailers = try readBlock(&input, limit: maxHeadBytes, trailers: true, read) else { return }
                state = .head
                end(trailers.isEmpty ? nil : trailers)
            }
        }
    }

    /// Chunk size: hex digits, then optional extensions after `;` (ignored).
    private static func chunkSize(_ line: [UInt8]) throws(HTTPWireError) -> Int {
        var size = 0
        var digits = 0
        for c in line {
            let v: Int
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = Int(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = Int(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = Int(c - UInt8(ascii: "A") + 10)
            case UInt8(ascii: ";"), UInt8(ascii: " "), UInt8(ascii: "\t"):
                // Whitespace may only come before an extension (RFC 9112 §7.1.1 BWS).
                guard digits > 0, line.drop(while: { $0 != c }).drop(while: { $0 == 0x20 || $0 == 0x09 }).first.map({ $0 == UInt8(ascii: ";") }) ?? true
                else { throw .malformed("invalid chunk size") }
                return size
            default:
                throw .malformed("invalid chunk size")
            }
            if size == 0 && v == 0 && digits > 0 { continue }  // leading zeros do not count toward the limit
            digits += 1
            guard digits <= 15 else { throw .malformed("chunk size too large") }
            size = size << 4 | v
        }
        guard digits > 0 else { throw .malformed("invalid chunk size") }
        return size
    }

    /// One line (without its CRLF), or nil when its end has not arrived yet.
    private mutating func takeLine(_ input: inout ByteBuffer, limit: Int, what: String, strictCRLF: Bool = false) throws(HTTPWireError) -> [UInt8]? {
        guard let newline = input.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) else {
            pending.append(contentsOf: input.readableBytesView)
            input.moveReaderIndex(to: input.writerIndex)
            if pending.count > limit + 1 {  // + its CR
                throw .malformed(strictCRLF ? "chunk data longer than its size" : "\(what) too long")
            }
            return nil
        }
        let count = newline - input.readerIndex
        var line = pending
        pending = []
        line.append(contentsOf: input.readableBytesView.prefix(count))
        input.moveReaderIndex(forwardBy: count + 1)
        if line.last == UInt8(ascii: "\r") {
            line.removeLast()
        } else if strictCRLF {
            throw .malformed("\(what) is not CRLF")
        }
        if line.count > limit { throw .malformed(strictCRLF ? "chunk data longer than its size" : "\(what) too long") }
        if line.contains(UInt8(ascii: "\r")) { throw .malformed("stray carriage return in \(what)") }
        return line
    }

    /// A head (start line and fields) or a trailer section: lines up to an empty one, handed to
    /// `read` once complete. Nil when it has not all arrived; more than `limit` bytes of it is
    /// refused (431 for a request). The common case, a whole head in one read, is read in place;
    /// a head split across reads is gathered in `pending`.
    private mutating func readBlock<R>(
        _ input: inout ByteBuffer, limit: Int, trailers: Bool, _ read: (inout HeadBlock) throws(HTTPWireError) -> R
    ) throws(HTTPWireError) -> R? {
        let tooLarge: HTTPWireError = trailers ? .malformed("trailer section too large") : .headTooLarge
        if pending.isEmpty {
            if !trailers {
                // RFC 9112 §2.2: empty lines before a request line are ignored.
                while let first = input.readableBytesView.first, first == UInt8(ascii: "\r") || first == UInt8(ascii: "\n") {
                    input.moveReaderIndex(forwardBy: 1)
                }
            }
            // The limit counts the block without its final line break, however the bytes were
            // split: an unfinished block may already hold that break's CR.
            guard let end = input.withUnsafeReadableBytes({ Self.blockEnd($0) }) else {
                if input.readableBytes > limit + 2 { throw tooLarge }
                pending.append(contentsOf: input.readableBytesView)
                input.moveReaderIndex(to: input.writerIndex)
                return nil
            }
            if end > limit + 2 { throw tooLarge }
            let result = input.withUnsafeReadableBytes { raw in Self.read(UnsafeRawBufferPointer(rebasing: raw[0..<end]), trailers, read) }
            input.moveReaderIndex(forwardBy: end)
            return try result.get()
        }
        let before = pending.count
        pending.append(contentsOf: input.readableBytesView)
        guard let end = pending.withUnsafeBytes({ Self.blockEnd($0) }) else {
            input.moveReaderIndex(to: input.writerIndex)
            if pending.count > limit + 2 { throw tooLarge }
            return nil
        }
        if end > limit + 2 { throw tooLarge }
        input.moveReaderIndex(forwardBy: end - before)
        let bytes = pending
        pending = []
        return try bytes.withUnsafeBytes { raw in Self.read(UnsafeRawBufferPointer(rebasing: raw[0..<end]), trailers, read) }.get()
    }

    private static func read<R>(
        _ bytes: UnsafeRawBufferPointer, _ trailers: Bool, _ read: (inout HeadBlock) throws(HTTPWireError) -> R
    ) -> Result<R, HTTPWireError> {
        var block = HeadBlock(bytes, hasStartLine: !trailers)
        do {
            return .success(try read(&block))
        } catch {
            return .failure(error)
        }
    }

    /// The offset just past the empty line that ends a block, if it is there.
    private static func blockEnd(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var lineStart = 0
        while let newline = HTTPSyntax.index(of: UInt8(ascii: "\n"), in: bytes, from: lineStart) {
            let length = newline - lineStart
            if length == 0 || (length == 1 && bytes[lineStart] == UInt8(ascii: "\r")) { return newline + 1 }
            lineStart = newline + 1
        }
        return nil
    }
}
