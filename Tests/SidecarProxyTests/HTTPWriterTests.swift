import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TraceModel

@testable import SidecarProxy

/// Test harness: the production request writer behind a channel handler, so that it and NIO's
/// encoder take the same writes.
final class RequestWriterHandler: ChannelOutboundHandler {
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = IOData
    private var writer = UpstreamRequestWriter()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        writer.write(unwrapOutboundIn(data), allocator: context.channel.allocator, promise: promise) { bytes, promise in
            context.write(NIOAny(bytes), promise: promise)
        }
    }
}

/// Test harness: the production response writer, told each final response's request method as
/// the proxy tells it (here from the request heads that passed by, oldest first).
final class ResponseWriterHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = IOData
    private var writer = DownstreamResponseWriter()
    private var methods: [HTTPMethod] = []
    private var current: HTTPMethod?

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data) { methods.append(head.method) }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        if case .head(let head) = part, !(head.status.code >= 100 && head.status.code < 200 && head.status.code != 101) {
            current = methods.isEmpty ? nil : methods.removeFirst()
        }
        writer.write(part, requestMethod: current, allocator: context.channel.allocator, promise: promise) { bytes, promise in
            context.write(NIOAny(bytes), promise: promise)
        }
    }
}

/// The sidecar's request writer against NIO's own `HTTPRequestEncoder`: for heads whose framing
/// is already settled (what the proxy always sends) the bytes must be identical, body parts
/// included, over randomized heads and bodies.
@Suite struct UpstreamRequestWriterTests {
    static func written(by handler: any ChannelHandler, _ parts: [HTTPClientRequestPart]) throws -> [UInt8] {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(handler)
        for part in parts { try channel.writeOutbound(part) }
        var out: [UInt8] = []
        while let chunk = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = chunk else { throw EncoderTestError.fileRegion }
            out += buffer.readableBytesView
        }
        _ = try channel.finish()
        return out
    }

    enum EncoderTestError: Error { case fileRegion }

    static let nameAlphabet = Array("abcXYZ-_019")
    static let valueAlphabet = Array("abc XYZ-_/.,;=019\t\"é😀")

    @Test func bytesEqualNIOsEncoderOverRandomRequests() async throws {
        var rng = SplitMix64(seed: 42)
        func text(_ alphabet: [Character], _ max: Int) -> String {
            String((0..<(1 + Int(rng.next() % UInt64(max)))).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
        }
        let methods: [HTTPMethod] = [.GET, .POST, .PUT, .DELETE, .HEAD, .PATCH, .OPTIONS, .RAW(value: "PURGE")]
        for i in 0..<1_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            var headers = HTTPHeaders()
            for _ in 0..<Int(rng.next() % 12) { headers.add(name: text(Self.nameAlphabet, 20), value: text(Self.valueAlphabet, 60)) }
            let bodies = (0..<Int(rng.next() % 4)).map { _ in ByteBuffer(bytes: (0..<Int(rng.next() % 3000)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }) }
            let chunked = i % 2 == 0
            let method = methods[Int(rng.next() % UInt64(methods.count))]
            if chunked {
                headers.add(name: "transfer-encoding", value: "chunked")
            } else {
                headers.add(name: "content-length", value: String(bodies.reduce(0) { $0 + $1.readableBytes }))
            }
            let head = HTTPRequestHead(version: .http1_1, method: method, uri: "/" + text(Self.valueAlphabet.filter { $0 != " " && $0 != "\t" }, 80), headers: headers)
            let trailers: HTTPHeaders? = chunked && i % 4 == 0 ? ["x-checksum": text(Self.nameAlphabet, 10)] : nil
            let parts: [HTTPClientRequestPart] = [.head(head)] + bodies.map { .body(.byteBuffer($0)) } + [.end(trailers)]
            // NIO drops Content-Length from bodiless methods' heads only when it adds framing itself;
            // with framing settled as here, both must agree byte for byte.
            let ours = try Self.written(by: RequestWriterHandler(), parts)
            let nios = try Self.written(by: HTTPRequestEncoder(), parts)
            try #require(ours == nios, "request \(i) (\(method), chunked: \(chunked)):\n\(String(decoding: ours, as: UTF8.self))\n!=\n\(String(decoding: nios, as: UTF8.self))")
        }
    }

    @Test func chunkHeaderIsLowerHexSize() {
        for (count, expected) in [(1, "1\r\n"), (15, "f\r\n"), (16, "10\r\n"), (4096, "1000\r\n"), (0x1234abc, "1234abc\r\n")] {
            var buffer = ByteBuffer()
            HTTPHeadWriter.writeChunkHeader(count, into: &buffer)
            #expect(String(buffer: buffer) == expected)
        }
    }

    @Test func responseHeadMatchesNIOsEncoder() throws {
        for (status, version) in [(HTTPResponseStatus.ok, HTTPVersion.http1_1), (.notFound, .http1_0), (.custom(code: 599, reasonPhrase: "Odd"), .http1_1)] {
            let headers: HTTPHeaders = ["content-length": "0", "x-a": "b"]
            var ours = ByteBuffer()
            HTTPHeadWriter.writeResponse(version: version, status: status, headers: headers, into: &ours)
            let channel = EmbeddedChannel(handler: HTTPResponseEncoder())
            try channel.writeOutbound(HTTPServerResponsePart.head(HTTPResponseHead(version: version, status: status, headers: headers)))
            let nios = try #require(try channel.readOutbound(as: IOData.self))
            guard case .byteBuffer(let buffer) = nios else { throw EncoderTestError.fileRegion }
            #expect(String(buffer: ours) == String(buffer: buffer))
            _ = try channel.finish()
        }
    }
}

/// The sidecar's response writer against NIO's (`configureHTTPServerPipeline`): the same request
/// bytes in, the same response parts out, byte-identical wire output, over random sequences of
/// methods (HEAD included), statuses (1xx, 204, 304), versions, framing headers, bodies and
/// trailers.
@Suite struct DownstreamResponseWriterTests {
    static func output(ours: Bool, requests: String, responses: [HTTPServerResponsePart]) throws -> [UInt8] {
        let channel = EmbeddedChannel()
        let sync = channel.pipeline.syncOperations
        if ours {
            try sync.addHandler(ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try sync.addHandler(ResponseWriterHandler())
        } else {
            try sync.configureHTTPServerPipeline(
                position: .last, withPipeliningAssistance: false, withServerUpgrade: nil, withErrorHandling: false,
                withOutboundHeaderValidation: false)
        }
        try channel.writeInbound(ByteBuffer(string: requests))
        while try channel.readInbound(as: HTTPServerRequestPart.self) != nil {}
        for part in responses { channel.write(part, promise: nil) }
        channel.flush()
        var out: [UInt8] = []
        while let chunk = try channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = chunk else { throw UpstreamRequestWriterTests.EncoderTestError.fileRegion }
            out += buffer.readableBytesView
        }
        _ = try channel.finish()
        return out
    }

    @Test func bytesEqualNIOsEncoderOverRandomExchanges() async throws {
        var rng = SplitMix64(seed: 99)
        let methods = ["GET", "HEAD", "POST", "DELETE"]
        let statuses: [HTTPResponseStatus] = [.ok, .noContent, .notModified, .notFound, .internalServerError, .custom(code: 299, reasonPhrase: "X")]
        for i in 0..<1_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let count = 1 + Int(rng.next() % 3)
            var requests = ""
            var responses: [HTTPServerResponsePart] = []
            for _ in 0..<count {
                requests += "\(methods[Int(rng.next() % 4)]) /r\(i) HTTP/1.1\r\nhost: x\r\n\r\n"
                if rng.next() % 4 == 0 { responses.append(.head(HTTPResponseHead(version: .http1_1, status: .continue))) }
                let version: HTTPVersion = rng.next() % 4 == 0 ? .http1_0 : .http1_1
                var headers: HTTPHeaders = ["x-app": "v\(rng.next() % 100)"]
                let bodies = (0..<Int(rng.next() % 3)).map { _ in ByteBuffer(string: String(repeating: "b", count: Int(rng.next() % 200))) }
                switch rng.next() % 4 {
                case 0: headers.add(name: "Content-Length", value: String(bodies.reduce(0) { $0 + $1.readableBytes }))
                case 1: headers.add(name: "transfer-encoding", value: "chunked")
                case 2:
                    headers.add(name: "content-length", value: String(bodies.reduce(0) { $0 + $1.readableBytes }))
                    headers.add(name: "Transfer-Encoding", value: "gzip, chunked")
                default: break
                }
                headers.add(name: "server", value: "t")
                responses.append(.head(HTTPResponseHead(version: version, status: statuses[Int(rng.next() % UInt64(statuses.count))], headers: headers)))
                responses += bodies.map { .body(.byteBuffer($0)) }
                responses.append(.end(rng.next() % 5 == 0 ? ["x-trailer": "t"] : nil))
            }
            let ours = try Self.output(ours: true, requests: requests, responses: responses)
            let nios = try Self.output(ours: false, requests: requests, responses: responses)
            try #require(
                ours == nios,
                "exchange \(i):\n\(String(decoding: ours, as: UTF8.self))\n!=\n\(String(decoding: nios, as: UTF8.self))")
        }
    }
}

/// The proxy forwards response heads as the bytes they came in (`parseForwarding` +
/// `writeForwarded`). What reaches the client must be the same message as when the head is
/// parsed into `HTTPHeaders` and written by `write`: NIO's decoder reads both outputs, over
/// random response streams (HEAD, 204, 304, 100 Continue, chunked with trailers, bodies to the
/// close), client versions and the Connection field the proxy adds.
@Suite struct ForwardedResponseHeadTests {
    typealias Event = HTTP1ParserTests.Event

    /// One response stream through a parser and the response writer, as the proxy would write it
    /// to a client of `version` (with `connection` added when given).
    static func written(
        forwarding: Bool, methods: [HTTPMethod], bytes: [UInt8], version: HTTPVersion, connection: String?
    ) throws -> [UInt8] {
        var parser = HTTPResponseParser(dropHopByHop: true)
        var writer = DownstreamResponseWriter()
        var queue = methods[...]
        var current: HTTPMethod?
        var out: [UInt8] = []
        let allocator = ByteBufferAllocator()
        let emit: WireEmit = { data, _ in
            guard case .byteBuffer(let b) = data else { return }
            out += b.readableBytesView
        }
        var extra = HTTPHeaders()
        if let connection { extra.add(name: "connection", value: connection) }
        func next() -> HTTPMethod? {
            current = queue.popFirst()
            return current
        }
        func body(_ b: ByteBuffer) { writer.write(.body(.byteBuffer(b)), requestMethod: nil, allocator: allocator, promise: nil, emit: emit) }
        func end(_ t: HTTPHeaders?) { writer.write(.end(t), requestMethod: nil, allocator: allocator, promise: nil, emit: emit) }
        var input = ByteBuffer(bytes: bytes)
        if forwarding {
            try parser.parseForwarding(&input, allocator: allocator, requestMethod: next) { part, _ in
                switch part {
                case .head(let head):
                    writer.writeForwarded(head, version: version, extra: extra, requestMethod: current, allocator: allocator, promise: nil, emit: emit)
                case .body(let b): body(b)
                case .end(let t): end(t)
                }
            }
        } else {
            try parser.parse(&input, requestMethod: next) { part, _ in
                switch part {
                case .head(let head):
                    var headers = head.headers
                    for (name, value) in extra { headers.add(name: name, value: value) }
                    let reply = HTTPResponseHead(version: version, status: head.status, headers: headers)
                    writer.write(.head(reply), requestMethod: current, allocator: allocator, promise: nil, emit: emit)
                case .body(let b): body(b)
                case .end(let t): end(t)
                }
            }
        }
        if try parser.inputClosed() { end(nil) }
        return out
    }

    /// NIO's reading of a written stream, fields compared as sets (the two paths order the
    /// fields the proxy adds differently, which means nothing on the wire).
    static func decoded(_ methods: [HTTPMethod], _ bytes: [UInt8]) throws -> [Event] {
        try HTTP1ParserTests.nioResponses(methods, [ByteBuffer(bytes: bytes)]).map { event in
            switch event {
            case .head(let line, let fields):
                return .head(line, fields.map { HTTP1ParserTests.Field(name: $0.name.lowercased(), value: $0.value) }
                    .sorted { ($0.name, $0.value) < ($1.name, $1.value) })
            case .body, .end:
                // Forwarding passes obs-text (0x80-0xFF) in field values on as sent where parsing
                // repairs it to U+FFFD; NIO repairs it as it reads either, so heads compare equal.
                return event
            }
        }
    }

    @Test func forwardedHeadsReachTheClientAsParsedHeadsDo() async throws {
        var rng = SplitMix64(seed: 0xF0D)
        for i in 0..<500 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let version: HTTPVersion = rng.chance(4) ? .http1_0 : .http1_1
            // An HTTP/1.0 client gets one response per connection when its body is unframed
            // (the proxy closes after it), so those streams hold one response.
            var (methods, bytes) = HTTP1ParserTests.randomResponseStream(&rng)
            while version == .http1_0 && methods.count > 1 { (methods, bytes) = HTTP1ParserTests.randomResponseStream(&rng) }
            // As the proxy does: a connection that carries more responses is not marked close, and
            // an HTTP/1.0 client is told keep-alive (NIO's decoder refuses data after a close).
            let connection = methods.count > 1
                ? (version == .http1_0 ? "keep-alive" : rng.pick([nil, "keep-alive"] as [String?]))
                : rng.pick([nil, "close", "keep-alive"] as [String?])
            let forwarded = try Self.written(forwarding: true, methods: methods, bytes: bytes, version: version, connection: connection)
            let parsed = try Self.written(forwarding: false, methods: methods, bytes: bytes, version: version, connection: connection)
            let a = try Self.decoded(methods, forwarded)
            let b = try Self.decoded(methods, parsed)
            try #require(a == b, "stream \(i) (seed 0xF0D):\n\(String(decoding: forwarded, as: UTF8.self))\n---\n\(String(decoding: parsed, as: UTF8.self))")
            #expect(!a.isEmpty)
        }
    }

    @Test func forwardedFieldsKeepTheBytesAsSentWithoutHopByHopOrLength() throws {
        let raw = "HTTP/1.1 200 OK\r\nX-Mixed-Case:  v a l  \r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
            + "Keep-Alive: timeout=5\r\nContent-Length: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Obs: \u{1}\r\n\r\nok"
        var parser = HTTPResponseParser(dropHopByHop: true)
        var bytes = Array(raw.utf8)
        if let obs = bytes.firstIndex(of: 1) { bytes[obs] = 0xE9 }  // a Latin-1 "é": obs-text, not UTF-8
        var input = ByteBuffer(bytes: bytes)
        var heads: [ForwardedResponseHead] = []
        var keepAlive = false
        try parser.parseForwarding(&input, allocator: ByteBufferAllocator(), requestMethod: { .GET }) { part, alive in
            if case .head(let h) = part {
                heads.append(h)
                keepAlive = alive
            }
        }
        let head = try #require(heads.first)
        #expect(Array(head.fields.readableBytesView) == Array("X-Mixed-Case: v a l\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nX-Obs: ".utf8) + [0xE9, 13, 10])
        #expect(head.contentLength == 2)
        #expect(head.status.code == 200)
        #expect(keepAlive)
    }
}
