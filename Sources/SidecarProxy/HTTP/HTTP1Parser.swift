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
    /// Heads come as NIO's types; the proxy reads with `parseForwarding`, and the tests hold the
    /// two to the same decisions.
    mutating func parse(_ input: inout ByteBuffer, emit: (HTTPServerRequestPart) -> Void) throws(HTTPWireError) {
        try reader.run(&input, head: { block throws(HTTPWireError) in
            let line = try Self.requestLine(block)
            var framing = FramingFields(readsConnection: false)  // RequestHeadScan reads it
            let headers = try block.fields(&framing)
            let head = HTTPRequestHead(version: line.version, method: line.method, uri: line.uri, headers: headers)
            if let problem = RequestRules.check(head, maxHeaderBytes: Int.max) { throw .refused(problem) }
            emit(.head(head))
            return Self.bodyFraming(line.method, upgrade: RequestHeadScan(headers).webSocketUpgrade, framing)
        }, body: { emit(.body($0)) }, end: { emit(.end($0)) })
    }

    /// As `parse`, with heads as the proxy forwards them: the fields read once, straight from the
    /// buffer, into what the proxy acts on and the end-to-end fields as wire bytes
    /// (`RequestHeadScan`), never split into strings.
    mutating func parseForwarding(
        _ input: inout ByteBuffer, allocator: ByteBufferAllocator, emit: (DownstreamRequestPart) -> Void
    ) throws(HTTPWireError) {
        try reader.run(&input, head: { block throws(HTTPWireError) in
            let line = try Self.requestLine(block)
            var framing = FramingFields(readsConnection: false)
            let scan = try RequestHeadScan(&block, framing: &framing, allocator: allocator)
            if let problem = RequestRules.check(version: line.version, method: line.method, uri: line.uri, scan.counts) {
                throw .refused(problem)
            }
            emit(.head(DownstreamRequestHead(method: line.method, uri: line.uri, version: line.version, scan: scan)))
            return Self.bodyFraming(line.method, upgrade: scan.webSocketUpgrade, framing)
        }, body: { emit(.body($0)) }, end: { emit(.end($0)) })
    }

    /// Bytes held for an unfinished message (a head still arriving, or a body in progress).
    var midMessage: Bool { reader.midMessage }

    /// What follows a head: after CONNECT or a WebSocket handshake, everything until the close
    /// is tunnel bytes (passed on as body parts, never read as HTTP); otherwise what the fields
    /// declare (RequestRules has refused every ambiguous combination by now).
    private static func bodyFraming(_ method: HTTPMethod, upgrade: Bool, _ fields: FramingFields) -> HTTPMessageReader.Framing {
        if method.isCONNECT || upgrade { return .untilClose }
        return fields.framing(untilCloseWithoutLength: false) ?? .none
    }

    /// `method SP request-target SP HTTP-version`
    private static func requestLine(_ block: HeadBlock) throws(HTTPWireError) -> (method: HTTPMethod, uri: String, version: HTTPVersion) {
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
        return (HTTPSyntax.method(bytes, line.lowerBound..<sp1), HTTPSyntax.string(bytes, (sp1 + 1)..<sp2), version)
    }
}

/// A request head as the proxy reads it: the request line, and one scan of its fields.
struct DownstreamRequestHead {
    var method: HTTPMethod
    var uri: String
    var version: HTTPVersion
    var scan: RequestHeadScan
}

/// What a downstream connection hands the proxy.
enum DownstreamRequestPart {
    case head(DownstreamRequestHead)
    case body(ByteBuffer)
    case end(HTTPHeaders?)
}

/// Reads HTTP/1.1 responses from an upstream connection. A response's framing depends on the
/// request it answers (nothing follows the head of a HEAD response), so each request's method is
/// noted as it is sent. Interim responses (1xx other than 101) are dropped, as NIO's decoder did:
/// the proxy answers `Expect: 100-continue` itself.
///
/// The proxy reads with `parseForwarding` (fields kept as wire bytes). `parse` gives NIO's types;
/// the tests hold it to NIO's decoder, and the forwarding path to it.
struct HTTPResponseParser {
    private var reader: HTTPMessageReader
    private var methods = CircularBuffer<HTTPMethod>()
    private let dropHopByHop: Bool

    /// `dropHopByHop`: leave hop-by-hop fields out of `parse`'s heads (a proxy forwards none of
    /// them; framing and keep-alive are still read from them). `parseForwarding` always does.
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
        if method?.isHEAD == true || code < 200 || code == 204 || code == 304 { return .none }
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
