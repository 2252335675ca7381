#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOHTTP1

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
    /// Whether Connection's tokens are read here. The request path reads them in
    /// `RequestHeadScan` (with the rest of what the proxy needs), so it leaves them.
    private let readsConnection: Bool

    init(readsConnection: Bool = true) {
        self.readsConnection = readsConnection
    }

    /// The declared length, when there was exactly one valid Content-Length.
    var contentLength: Int? { lengths == 1 && !invalidLength ? length : nil }

    /// Whether the connection may carry another message after this one.
    func keepAlive(_ version: HTTPVersion) -> Bool {
        HTTPSyntax.keepAlive(close: connectionClose, keepAlive: connectionKeepAlive, version: version)
    }

    /// Notes a field from its bytes (no strings are built for the ones that only frame).
    mutating func note(_ kind: FieldName.Kind, _ bytes: UnsafeRawBufferPointer, _ value: Range<Int>) {
        switch kind {
        case .connection where readsConnection:
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
        case .connection, .hopByHop, .other:
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

    /// NIO's `isKeepAlive` rule from Connection tokens already read: `close` wins, then
    /// `keep-alive`, then the version's default.
    static func keepAlive(close: Bool, keepAlive: Bool, version: HTTPVersion) -> Bool {
        if close { return false }
        return keepAlive || (version.major == 1 && version.minor >= 1)
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

extension HTTPMethod {
    // Case tests by pattern: `==` on HTTPMethod compares raw-value strings (the type has a
    // `.RAW(value:)` case), and a request made a dozen such comparisons. Every method name NIO
    // knows, ours included, is parsed to its own case, never to `.RAW`.
    var isCONNECT: Bool { if case .CONNECT = self { true } else { false } }
    var isHEAD: Bool { if case .HEAD = self { true } else { false } }
    /// POST, PUT and PATCH: a request with one of these and no framing is sent with `content-length: 0`.
    var sendsBody: Bool {
        switch self {
        case .POST, .PUT, .PATCH: true
        default: false
        }
    }
}
