import NIOHTTP1
import TraceModel

/// How a message body is delimited on the wire.
public enum BodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) that a proxy must not forward: `Connection` and every
/// header it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`
/// (re-created by framing), `Upgrade`, `Proxy-Authorization` and `Proxy-Authenticate`.
public enum HopByHop {
    public static let fixed = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
        "proxy-authorization", "proxy-authenticate",
    ]

    /// Removes hop-by-hop headers in place. Returns true when the message was chunked.
    /// One read-only pass finds what must go; then each name found is removed in place (most
    /// requests carry none, most responses only `Connection`), without rebuilding the headers.
    @discardableResult
    public static func strip(_ headers: inout HTTPHeaders) -> Bool {
        var chunked = false
        var listed: [String] = []
        var foundFixed: UInt16 = 0  // bit i: fixed[i] is present
        for (name, value) in headers {
            guard let i = fixedIndex(name) else { continue }
            foundFixed |= 1 << UInt16(i)
            switch fixed[i] {
            case "connection":
                // Split on bytes (a Character split showed in profiles), and skip the two tokens
                // nearly every Connection header carries before lower-casing anything.
                for token in value.utf8.split(separator: UInt8(ascii: ",")) {
                    let t = Substring(token).trimmingSpaces
                    if t.isEmpty || t.equalsLowercaseASCII("close") || t.equalsLowercaseASCII("keep-alive") { continue }
                    listed.append(t.lowercased())
                }
            case "transfer-encoding":
                if value.lowercased().contains("chunked") { chunked = true }
            default:
                break
            }
        }
        for (i, name) in fixed.enumerated() where foundFixed & (1 << UInt16(i)) != 0 { headers.remove(name: name) }
        for name in listed { headers.remove(name: name) }
        return chunked
    }

    private static func fixedIndex(_ name: String) -> Int? {
        let n = name.utf8.count
        for (i, f) in fixed.enumerated() where f.utf8.count == n && name.equalsLowercaseASCII(f) { return i }
        return nil
    }
}

/// Why a request head is refused before it reaches any upstream.
public enum RequestRejection: Equatable, Sendable {
    case badRequest(String)
    case headersTooLarge

    public var status: HTTPResponseStatus {
        switch self {
        case .badRequest: return .badRequest
        case .headersTooLarge: return .requestHeaderFieldsTooLarge
        }
    }

    public var reason: String {
        switch self {
        case .badRequest(let r): return r
        case .headersTooLarge: return "request header block too large"
        }
    }
}

/// How often a request head named each field that frames it, and the last value of each.
struct RequestFieldCounts {
    var hosts = 0
    var contentLengths = 0
    var contentLength: String?
    var transferEncodings = 0
    var transferEncoding = ""
}

/// Request-smuggling and framing rules (RFC 9112 §6.3), applied by `HTTPRequestParser` to every
/// head it reads before any of it reaches the proxy: the single place these rules live.
public enum RequestRules {
    public static func check(_ head: HTTPRequestHead, maxHeaderBytes: Int) -> RequestRejection? {
        var counts = RequestFieldCounts()
        var size = head.uri.utf8.count + 16
        for (name, value) in head.headers {
            size += name.utf8.count + value.utf8.count + 4
            switch name.utf8.count {
            case 14 where name.equalsLowercaseASCII("content-length"):
                counts.contentLengths += 1
                counts.contentLength = value
            case 17 where name.equalsLowercaseASCII("transfer-encoding"):
                counts.transferEncodings += 1
                counts.transferEncoding = value
            case 4 where name.equalsLowercaseASCII("host"):
                counts.hosts += 1
            default:
                break
            }
        }
        if size > maxHeaderBytes { return .headersTooLarge }
        return check(version: head.version, method: head.method, uri: head.uri, counts)
    }

    /// The rules over what a head's framing fields came to (read from `HTTPHeaders` above, or
    /// from the wire by `RequestHeadScan`).
    static func check(version: HTTPVersion, method: HTTPMethod, uri: String, _ counts: RequestFieldCounts) -> RequestRejection? {
        if counts.contentLengths > 0 && counts.transferEncodings > 0 {
            return .badRequest("both Content-Length and Transfer-Encoding")
        }
        if counts.contentLengths > 1 { return .badRequest("duplicate Content-Length") }
        if let lengthValue = counts.contentLength {
            let digits = lengthValue.trimmingSpaces
            if digits.isEmpty || digits.utf8.count > 18 || !digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
                return .badRequest("invalid Content-Length")
            }
        }
        if counts.transferEncodings > 1 { return .badRequest("duplicate Transfer-Encoding") }
        if counts.transferEncodings == 1 {
            if version.major == 1 && version.minor == 0 { return .badRequest("Transfer-Encoding in an HTTP/1.0 request") }
            let codings = counts.transferEncoding.split(separator: ",").map { $0.trimmingSpaces.lowercased() }
            if codings.last != "chunked" { return .badRequest("Transfer-Encoding must end with chunked") }
        }
        if counts.hosts > 1 { return .badRequest("duplicate Host") }
        let absolute = uri.hasPrefix("http://") || uri.hasPrefix("https://")
        if counts.hosts == 0 && !absolute && version.minor >= 1 && !method.isCONNECT {
            return .badRequest("missing Host")
        }
        if uri.isEmpty { return .badRequest("empty request target") }
        return nil
    }

    /// The body framing a valid request head declares (from what `RequestHeadScan` read).
    static func framing(chunked: Bool, contentLength: String?) -> BodyFraming {
        if chunked { return .chunked }
        if let contentLength, let n = Int(contentLength.trimmingSpaces) { return n > 0 ? .contentLength(n) : .none }
        return .none
    }
}

extension StringProtocol {
    /// Case-insensitive ASCII comparison against an already lower-case name, without building a
    /// lower-cased copy (header names are compared on every request).
    func equalsLowercaseASCII(_ lower: String) -> Bool {
        guard utf8.count == lower.utf8.count else { return false }
        // Over contiguous bytes when both have them (native strings do): a plain loop instead of
        // a generic iterator pair, which showed in profiles.
        let fast = utf8.withContiguousStorageIfAvailable { a in
            lower.utf8.withContiguousStorageIfAvailable { b in Self.foldedEqual(a, b) }
        }
        if let fast, let result = fast { return result }
        for (a, b) in zip(utf8, lower.utf8) where Self.fold(a) != b { return false }
        return true
    }

    @inline(__always) private static func fold(_ c: UInt8) -> UInt8 { c >= 65 && c <= 90 ? c | 0x20 : c }

    private static func foldedEqual(_ a: UnsafeBufferPointer<UInt8>, _ b: UnsafeBufferPointer<UInt8>) -> Bool {
        for i in 0..<a.count where fold(a[i]) != b[i] { return false }
        return true
    }
}

extension StringProtocol {
    var trimmingSpaces: Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
