import NIOCore
import NIOHTTP1
import TraceModel

/// Serializes an HTTP/1.1 start line and header block into a buffer in one pass: the size is
/// summed first, then every name and value is copied once into memory reserved for all of them.
/// NIO's encoders write each string through `ByteBuffer`'s general write path (four writes per
/// header, each with its own capacity and uniqueness checks), which showed as a tenth of the
/// sidecar's instructions per request.
enum HTTPHeadWriter {
    /// The field that frames a forwarded response's body, written last by `writeResponse`.
    enum FramingField: Equatable {
        case contentLength(Int)
        case chunked
    }

    /// `HTTP/1.x code reason` and the headers; `forwarded` fields (wire bytes, each line ending
    /// in CRLF, as `ForwardedResponseHead` keeps them) go first, copied whole, and `framing`
    /// last, its digits written in place (no string, no header list per response).
    static func writeResponse(
        version: HTTPVersion, status: HTTPResponseStatus, headers: HTTPHeaders, forwarded: ByteBuffer? = nil, framing: FramingField? = nil,
        into buffer: inout ByteBuffer
    ) {
        let versionText = version.minor == 0 && version.major == 1 ? "HTTP/1.0 " : "HTTP/1.1 "
        let code = status.code
        let reason = status.reasonPhrase
        let forwardedSize = forwarded?.readableBytes ?? 0
        var framingSize = 0
        switch framing {
        case .contentLength(let n): framingSize = 16 + decimalDigits(n) + 2  // "content-length: " N CRLF
        case .chunked: framingSize = 28  // "transfer-encoding: chunked" CRLF
        case nil: break
        }
        let lineSize = 9 + 3 + 1 + reason.utf8.count + 2 + forwardedSize
        write(lineSize: lineSize, headers: headers, trailing: framingSize, into: &buffer, trailer: { out, i in
            switch framing {
            case .contentLength(let n):
                i = copy("content-length: ", to: out, at: i)
                let digits = decimalDigits(n)
                var v = n
                for d in stride(from: digits - 1, through: 0, by: -1) {
                    out[i + d] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v % 10)
                    v /= 10
                }
                i += digits
                out[i] = UInt8(ascii: "\r")
                out[i + 1] = UInt8(ascii: "\n")
                i += 2
            case .chunked:
                i = copy("transfer-encoding: chunked\r\n", to: out, at: i)
            case nil:
                break
            }
        }) { out, i in
            i = copy(versionText, to: out, at: i)
            out[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: (code / 100) % 10)
            out[i + 1] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: (code / 10) % 10)
            out[i + 2] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: code % 10)
            out[i + 3] = UInt8(ascii: " ")
            i = copy(reason, to: out, at: i + 4)
            out[i] = UInt8(ascii: "\r")
            out[i + 1] = UInt8(ascii: "\n")
            i += 2
            if let forwarded, forwardedSize > 0 {
                let start = i
                forwarded.withUnsafeReadableBytes { UnsafeMutableRawBufferPointer(rebasing: out[start..<(start + forwardedSize)]).copyMemory(from: $0) }
                i += forwardedSize
            }
        }
    }

    private static func decimalDigits(_ n: Int) -> Int {
        var digits = 1
        var v = n
        while v >= 10 {
            v /= 10
            digits += 1
        }
        return digits
    }

    private static func write(
        lineSize: Int, headers: HTTPHeaders, trailing: Int, into buffer: inout ByteBuffer,
        trailer: (UnsafeMutableRawBufferPointer, inout Int) -> Void,
        startLine: (UnsafeMutableRawBufferPointer, inout Int) -> Void
    ) {
        var size = lineSize + trailing + 2
        for (name, value) in headers { size += name.utf8.count + value.utf8.count + 4 }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            var i = 0
            startLine(out, &i)
            for (name, value) in headers { i = field(name, value, to: out, at: i) }
            trailer(out, &i)
            out[i] = UInt8(ascii: "\r")
            out[i + 1] = UInt8(ascii: "\n")
            return i + 2
        }
    }

    /// `name: value` and CRLF at `out[offset...]`, returning the index after it.
    @inline(__always)
    static func field(_ name: String, _ value: String, to out: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var i = copy(name, to: out, at: offset)
        out[i] = UInt8(ascii: ":")
        out[i + 1] = UInt8(ascii: " ")
        i = copy(value, to: out, at: i + 2)
        out[i] = UInt8(ascii: "\r")
        out[i + 1] = UInt8(ascii: "\n")
        return i + 2
    }

    /// The same from a name and a value lying in `bytes` (a head block being read).
    @inline(__always)
    static func field(_ bytes: UnsafeRawBufferPointer, name: Range<Int>, value: Range<Int>, to out: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        var i = offset
        UnsafeMutableRawBufferPointer(rebasing: out[i..<(i + name.count)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[name]))
        i += name.count
        out[i] = UInt8(ascii: ":")
        out[i + 1] = UInt8(ascii: " ")
        i += 2
        UnsafeMutableRawBufferPointer(rebasing: out[i..<(i + value.count)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[value]))
        i += value.count
        out[i] = UInt8(ascii: "\r")
        out[i + 1] = UInt8(ascii: "\n")
        return i + 2
    }

    /// Copies the string's UTF-8 to `out[at...]`, returning the index after it.
    @inline(__always)
    static func copy(_ s: String, to out: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        let count = s.utf8.count
        let copied: Void? = s.utf8.withContiguousStorageIfAvailable { bytes in
            UnsafeMutableRawBufferPointer(rebasing: out[offset..<offset + count]).copyMemory(from: UnsafeRawBufferPointer(bytes))
        }
        if copied == nil {
            var i = offset
            for byte in s.utf8 {
                out[i] = byte
                i += 1
            }
        }
        return offset + count
    }

    /// The line that opens a chunk of `count` bytes: hex size and CRLF.
    static func writeChunkHeader(_ count: Int, into buffer: inout ByteBuffer) {
        var digits = 1
        while count >> (4 * digits) != 0 { digits += 1 }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: digits + 2) { out in
            for d in 0..<digits {
                out[digits - 1 - d] = Hex.digit(UInt64(count >> (4 * d)))
            }
            out[digits] = UInt8(ascii: "\r")
            out[digits + 1] = UInt8(ascii: "\n")
            return digits + 2
        }
    }
}

/// Where serialized bytes go: the channel's write, or a test's collector.
typealias WireEmit = (IOData, EventLoopPromise<Void>?) -> Void

/// Chunked-body framing shared by both writers.
enum ChunkedBody {
    /// A body part as one chunk. An empty part would read as the body's end, so it is passed on
    /// unframed (a no-op write that keeps its promise in order).
    static func write(_ body: IOData, chunked: Bool, allocator: ByteBufferAllocator, promise: EventLoopPromise<Void>?, emit: WireEmit) {
        guard chunked, body.readableBytes > 0 else {
            emit(body, promise)
            return
        }
        var header = allocator.buffer(capacity: 18)
        HTTPHeadWriter.writeChunkHeader(body.readableBytes, into: &header)
        emit(.byteBuffer(header), nil)
        emit(body, nil)
        emit(.byteBuffer(crlf), promise)
    }

    /// The end of a message: the last chunk and trailers when chunked, else nothing (an empty
    /// write only when someone waits on the promise).
    static func end(_ trailers: HTTPHeaders?, chunked: Bool, allocator: ByteBufferAllocator, promise: EventLoopPromise<Void>?, emit: WireEmit) {
        if chunked {
            var buffer = allocator.buffer(capacity: 5)
            buffer.writeStaticString("0\r\n")
            if let trailers {
                for (name, value) in trailers {
                    buffer.writeString(name)
                    buffer.writeStaticString(": ")
                    buffer.writeString(value)
                    buffer.writeStaticString("\r\n")
                }
            }
            buffer.writeStaticString("\r\n")
            emit(.byteBuffer(buffer), promise)
        } else if let promise {
            emit(.byteBuffer(allocator.buffer(capacity: 0)), promise)
        }
    }

    private static let crlf = ByteBuffer(staticString: "\r\n")
}

/// Writes request parts toward an upstream in HTTP/1.1 wire form (in place of NIO's
/// `HTTPRequestEncoder`, and byte-equal to it). The proxy has already settled the framing headers
/// (the client's Content-Length, or `Transfer-Encoding: chunked` it added), so this only
/// serializes: the body is chunk-framed when the head said chunked, and sent as is otherwise.
struct UpstreamRequestWriter {
    private var chunked = false

    mutating func write(_ part: UpstreamRequestPart, allocator: ByteBufferAllocator, promise: EventLoopPromise<Void>?, emit: WireEmit) {
        switch part {
        case .head(let head):
            chunked = head.chunked
            emit(.byteBuffer(head.bytes), promise)
        case .body(let body):
            ChunkedBody.write(body, chunked: chunked, allocator: allocator, promise: promise, emit: emit)
        case .end(let trailers):
            ChunkedBody.end(trailers, chunked: chunked, allocator: allocator, promise: promise, emit: emit)
            chunked = false
        }
    }

    /// A part in NIO's terms (tests hold this writer, and the proxy's head encoder, to NIO's
    /// encoder with it): the head's fields are written as the proxy writes the ones it adds.
    mutating func write(_ part: HTTPClientRequestPart, allocator: ByteBufferAllocator, promise: EventLoopPromise<Void>?, emit: WireEmit) {
        switch part {
        case .head(let head):
            let fields = head.headers.map { ($0.name, $0.value) }
            let encoded = UpstreamRequestHead(method: head.method, target: head.uri, added: fields, forwarded: ByteBuffer(), allocator: allocator)
            write(UpstreamRequestPart.head(encoded), allocator: allocator, promise: promise, emit: emit)
        case .body(let body):
            write(UpstreamRequestPart.body(body), allocator: allocator, promise: promise, emit: emit)
        case .end(let trailers):
            write(UpstreamRequestPart.end(trailers), allocator: allocator, promise: promise, emit: emit)
        }
    }
}

/// A request head as it goes to an upstream, already in wire form: written once per request,
/// and sent again unchanged by a retry.
struct UpstreamRequestHead {
    var method: HTTPMethod
    var bytes: ByteBuffer
    /// The head declares a chunked body (the body parts are framed as chunks).
    var chunked: Bool
}

extension UpstreamRequestHead {
    /// `METHOD target HTTP/1.1`, the fields the proxy adds (Host first), then the forwarded ones
    /// (wire bytes, as `RequestHeadScan` keeps them), copied whole: the sizes are summed first
    /// and everything is written into memory reserved once.
    init(method: HTTPMethod, target: String, added: [(String, String)], forwarded: ByteBuffer, allocator: ByteBufferAllocator) {
        let methodName = method.rawValue
        let forwardedSize = forwarded.readableBytes
        var size = methodName.utf8.count + 1 + target.utf8.count + 11 + forwardedSize + 2  // " HTTP/1.1\r\n", final CRLF
        var chunked = false
        for (name, value) in added {
            size += name.utf8.count + value.utf8.count + 4
            if name.utf8.count == 17, name.equalsLowercaseASCII("transfer-encoding"), value.equalsLowercaseASCII("chunked") { chunked = true }
        }
        var buffer = allocator.buffer(capacity: size)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: size) { out in
            var i = HTTPHeadWriter.copy(methodName, to: out, at: 0)
            out[i] = UInt8(ascii: " ")
            i = HTTPHeadWriter.copy(target, to: out, at: i + 1)
            i = HTTPHeadWriter.copy(" HTTP/1.1\r\n", to: out, at: i)
            for (name, value) in added { i = HTTPHeadWriter.field(name, value, to: out, at: i) }
            if forwardedSize > 0 {
                let start = i
                forwarded.withUnsafeReadableBytes { UnsafeMutableRawBufferPointer(rebasing: out[start..<(start + forwardedSize)]).copyMemory(from: $0) }
                i += forwardedSize
            }
            out[i] = UInt8(ascii: "\r")
            out[i + 1] = UInt8(ascii: "\n")
            return i + 2
        }
        self.init(method: method, bytes: buffer, chunked: chunked)
    }
}

/// What the proxy sends an upstream connection.
enum UpstreamRequestPart {
    case head(UpstreamRequestHead)
    case body(IOData)
    case end(HTTPHeaders?)
}

/// Writes responses toward the client in HTTP/1.1 wire form, in place of NIO's
/// `HTTPResponseEncoder` and with its framing rules: no body for 1xx, 204 and 304 or in answer to
/// HEAD and CONNECT; Content-Length wins over Transfer-Encoding; otherwise an HTTP/1.1 body is
/// chunked. The caller says which request's method a head answers.
struct DownstreamResponseWriter {
    private var chunked = false
    private var suppressBody = false

    enum WriterError: Error { case bodyNotAllowed }

    /// A forwarded head (`ForwardedResponseHead`) with `extra` fields from the proxy, framed by the
    /// same rules as `write`: its Content-Length is written back where a body may follow, and an
    /// HTTP/1.1 body without one is chunked.
    mutating func writeForwarded(
        _ head: ForwardedResponseHead, version: HTTPVersion, extra: HTTPHeaders, requestMethod: HTTPMethod?,
        allocator: ByteBufferAllocator, promise: EventLoopPromise<Void>?, emit: WireEmit
    ) {
        suppressBody = requestMethod?.isHEAD == true || requestMethod?.isCONNECT == true
        var framing: HTTPHeadWriter.FramingField?
        if requestMethod?.isCONNECT == true || !head.status.mayHaveResponseBody {
            // no framing fields at all
        } else if let length = head.contentLength {
            framing = .contentLength(length)
        } else if version.major == 1 && version.minor >= 1 {
            framing = .chunked
        }
        chunked = suppressBody ? false : framing == .chunked
        var buffer = allocator.buffer(capacity: 0)
        HTTPHeadWriter.writeResponse(version: version, status: head.status, headers: extra, forwarded: head.fields, framing: framing, into: &buffer)
        emit(.byteBuffer(buffer), promise)
    }

    /// `requestMethod`: of the request a final response answers (nil: none known, e.g. a refusal
    /// of a head that did not parse); interim responses (1xx but 101) answer no request.
    mutating func write(
        _ part: HTTPServerResponsePart, requestMethod: HTTPMethod?, allocator: ByteBufferAllocator, promise: EventLoopPromise<Void>?,
        emit: WireEmit
    ) {
        switch part {
        case .head(var head):
            let code = head.status.code
            let informational = code >= 100 && code < 200 && code != 101
            var connect = false
            if !informational {
                suppressBody = requestMethod?.isHEAD == true || requestMethod?.isCONNECT == true
                connect = requestMethod?.isCONNECT == true
            }
            var hasLength = false
            var hasEncoding = false
            for (name, _) in head.headers {
                switch name.utf8.count {
                case 14 where name.equalsLowercaseASCII("content-length"): hasLength = true
                case 17 where name.equalsLowercaseASCII("transfer-encoding"): hasEncoding = true
                default: break
                }
            }
            var isChunked = false
            if connect || !head.status.mayHaveResponseBody {
                if hasLength { head.headers.remove(name: "content-length") }
                if hasEncoding { head.headers.remove(name: "transfer-encoding") }
            } else if hasLength {
                if hasEncoding { head.headers.remove(name: "transfer-encoding") }
            } else if head.version.major == 1 && head.version.minor >= 1 {
                head.headers.replaceOrAdd(name: "transfer-encoding", value: "chunked")
                isChunked = true
            }
            if !informational { chunked = suppressBody ? false : isChunked }
            var buffer = allocator.buffer(capacity: 0)
            HTTPHeadWriter.writeResponse(version: head.version, status: head.status, headers: head.headers, into: &buffer)
            emit(.byteBuffer(buffer), promise)
        case .body(let body):
            if suppressBody {
                promise?.fail(WriterError.bodyNotAllowed)  // nothing may follow a HEAD response's head
                return
            }
            ChunkedBody.write(body, chunked: chunked, allocator: allocator, promise: promise, emit: emit)
        case .end(let trailers):
            suppressBody = false
            ChunkedBody.end(trailers, chunked: chunked, allocator: allocator, promise: promise, emit: emit)
        }
    }
}
