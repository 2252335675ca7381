import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TraceModel

@testable import SidecarProxy

/// `HTTPRequestParser` and `HTTPResponseParser` replace NIO's llhttp decoders, so NIO is the
/// oracle: the same valid bytes, split anywhere, must decode to the same messages. Body slicing
/// is the decoders' own business, so adjacent body parts are merged before comparing.
@Suite struct HTTP1ParserTests {
    /// A part as both decoders must agree on it.
    enum Event: Equatable {
        case head(String, [Field])  // the start line as NIO's types print it
        case body([UInt8])
        case end([Field])  // trailers; NIO's nil and an empty list are the same message
    }

    struct Field: Equatable, CustomStringConvertible {
        var name: String
        var value: String
        var description: String { "\(name): \(value.debugDescription)" }
    }

    static func append(_ event: Event, to events: inout [Event]) {
        if case .body(let more) = event, case .body(let sofar)? = events.last {
            events[events.count - 1] = .body(sofar + more)
        } else {
            events.append(event)
        }
    }

    static func fields(_ headers: HTTPHeaders?) -> [Field] { (headers ?? [:]).map { Field(name: $0.name, value: $0.value) } }

    static func event(_ part: HTTPServerRequestPart) -> Event {
        switch part {
        case .head(let h): return .head("\(h.method.rawValue) \(h.uri) \(h.version)", fields(h.headers))
        case .body(let b): return .body(Array(b.readableBytesView))
        case .end(let t): return .end(fields(t))
        }
    }

    /// The status code only: NIO drops the reason phrase (`.custom(299, "")`), ours keeps it.
    static func event(_ part: HTTPClientResponsePart) -> Event {
        switch part {
        case .head(let h): return .head("\(h.version) \(h.status.code)", fields(h.headers))
        case .body(let b): return .body(Array(b.readableBytesView))
        case .end(let t): return .end(fields(t))
        }
    }

    /// llhttp keeps a value's trailing whitespace; RFC 9110 §5.5 excludes it, and ours does.
    static func withoutTrailingOWS(_ events: [Event]) -> [Event] {
        func trim(_ fields: [Field]) -> [Field] {
            fields.map { Field(name: $0.name, value: String($0.value.reversed().drop { $0 == " " || $0 == "\t" }.reversed())) }
        }
        return events.map { event in
            switch event {
            case .head(let start, let fields): return .head(start, trim(fields))
            case .body: return event
            case .end(let fields): return .end(trim(fields))
            }
        }
    }

    /// Bodies print as their length and first bytes, so a failure message stays readable.
    static func show(_ events: [Event]) -> String {
        events.map { event in
            switch event {
            case .head(let start, let fields): return "head \(start) \(fields)"
            case .body(let b): return "body \(b.count) bytes \(b.prefix(8))"
            case .end(let fields): return "end \(fields)"
            }
        }.joined(separator: "\n  ")
    }

    // MARK: Generators

    static let tchars = Array("abcdefxyzABCDEFXYZ0123456789-_!#$%&'*+.^`|~".utf8)
    static let valueChars = Array("abcXYZ019-_/.,;=\"()[]{}?@ ".utf8)
    static let pathChars = Array("abcxyz019-._~%!$'()*+,;=:@".utf8)

    static func text(_ alphabet: [UInt8], _ count: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0..<count).map { _ in rng.pick(alphabet) }
    }

    /// Header fields as sent, around the framing fields the caller adds: names are random tokens
    /// (prefixed so none means anything to a decoder), values carry optional whitespace around
    /// them, inner spaces, obs-text and sometimes nothing at all.
    static func randomFields(_ rng: inout SplitMix64) -> [[UInt8]] {
        (0..<rng.below(8)).map { _ in
            let name = Array("X-".utf8) + text(tchars, 1 + rng.below(16), &rng)
            var value = text(valueChars, rng.below(40), &rng)
            if rng.chance(4) { value.insert(UInt8(0x80 + rng.below(0x80)), at: rng.below(value.count + 1)) }
            let lead = rng.pick([[], [0x20], [0x20, 0x20], [0x09]] as [[UInt8]])
            let trail = rng.pick([[], [0x20], [0x09, 0x20]] as [[UInt8]])
            return name + Array(":".utf8) + lead + value + trail
        }
    }

    static func mixedCase(_ name: String, _ rng: inout SplitMix64) -> [UInt8] {
        name.utf8.map { $0 >= UInt8(ascii: "a") && rng.chance(2) ? $0 - 0x20 : $0 }
    }

    static func chunkedBody(_ rng: inout SplitMix64) -> [UInt8] {
        var out: [UInt8] = []
        for _ in 0..<rng.below(5) {
            let size = 1 + rng.below(1000)
            let hex = String(size, radix: 16, uppercase: rng.chance(2))
            out += Array((rng.chance(6) ? "0" : "").utf8) + Array(hex.utf8) + Array((rng.chance(4) ? ";a=b" : "").utf8) + [13, 10]
            out += rng.bytes(size) + [13, 10]
        }
        out += Array((rng.chance(5) ? "0;x=y\r\n" : "0\r\n").utf8)
        for i in 0..<(rng.chance(3) ? 1 + rng.below(2) : 0) { out += Array("X-Trailer-\(i): t \(rng.below(100))\r\n".utf8) }
        return out + [13, 10]
    }

    /// One valid request; HTTP/1.0 only when `last`, since llhttp refuses bytes after a message
    /// that does not keep the connection alive.
    static func randomRequest(_ rng: inout SplitMix64, last: Bool) -> [UInt8] {
        let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "PURGE"]
        let http10 = last && rng.chance(4)
        var target = "/" + String(decoding: text(pathChars, rng.below(30), &rng), as: UTF8.self)
        if rng.chance(2) { target += "?q=\(rng.below(1000))&x=a%20b" }
        if rng.chance(5) { target = "http://svc.local:\(8000 + rng.below(1000))" + target }
        var fields = randomFields(&rng)
        fields.append(mixedCase("host", &rng) + Array(": svc.local".utf8))
        var body: [UInt8] = []
        switch rng.below(3) {
        case 0 where !http10:
            fields.append(mixedCase("transfer-encoding", &rng) + Array((rng.chance(5) ? ": gzip, chunked" : ": chunked").utf8))
            body = chunkedBody(&rng)
        case 1:
            body = rng.bytes(rng.chance(5) ? 0 : rng.below(3001))
            fields.append(mixedCase("content-length", &rng) + Array(": \(body.count)".utf8))
        default:
            break
        }
        fields.shuffle(using: &rng)
        let line = "\(rng.pick(methods)) \(target) HTTP/1.\(http10 ? 0 : 1)"
        return fields.reduce(Array(line.utf8) + [13, 10]) { $0 + $1 + [13, 10] } + [13, 10] + body
    }

    static func randomRequestStream(_ rng: inout SplitMix64) -> [UInt8] {
        let count = 1 + rng.below(3)
        return (0..<count).flatMap { randomRequest(&rng, last: $0 == count - 1) }
    }

    /// Responses to `methods`, in order: HEAD, 204 and 304 answers declare lengths that no body
    /// follows, some are preceded by a 100 Continue, and the last may run until the close.
    static func randomResponseStream(_ rng: inout SplitMix64) -> (methods: [HTTPMethod], bytes: [UInt8]) {
        let count = 1 + rng.below(3)
        var methods: [HTTPMethod] = []
        var out: [UInt8] = []
        for i in 0..<count {
            let last = i == count - 1
            let method = rng.pick([HTTPMethod.GET, .GET, .POST, .HEAD])
            methods.append(method)
            if rng.chance(6) { out += Array("HTTP/1.1 100 Continue\r\n\r\n".utf8) }
            let status = rng.pick([200, 200, 201, 299, 404, 500, 204, 304])
            var fields = randomFields(&rng) + [Array("Server: t".utf8)]
            var body: [UInt8] = []
            let bodyless = method == .HEAD || status == 204 || status == 304
            let payload = rng.bytes(rng.below(3001))
            switch rng.below(last ? 3 : 2) {
            case 0:
                fields.append(mixedCase("content-length", &rng) + Array(": \(payload.count)".utf8))
                if !bodyless { body = payload }
            case 1 where status != 204:
                fields.append(mixedCase("transfer-encoding", &rng) + Array(": chunked".utf8))
                if !bodyless { body = chunkedBody(&rng) }
            default:
                if !bodyless { body = payload }  // until close; only ever the last response
            }
            fields.shuffle(using: &rng)
            let version = last && rng.chance(5) ? "1.0" : "1.1"
            out += fields.reduce(Array("HTTP/\(version) \(status) Some Reason\r\n".utf8)) { $0 + $1 + [13, 10] } + [13, 10] + body
        }
        return (methods, out)
    }

    /// Random cut points; every 50th split is byte by byte, where partial heads and lines live.
    static func split(_ bytes: [UInt8], _ rng: inout SplitMix64) -> [ByteBuffer] {
        if rng.chance(50) { return bytes.map { ByteBuffer(bytes: [$0]) } }
        let cuts = ([0, bytes.count] + (0..<rng.below(8)).map { _ in rng.below(bytes.count + 1) }).sorted()
        return zip(cuts, cuts.dropFirst()).map { ByteBuffer(bytes: bytes[$0..<$1]) }
    }

    // MARK: Drivers

    static func nioRequests(_ pieces: [ByteBuffer]) throws -> [Event] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
        var events: [Event] = []
        for piece in pieces {
            try channel.writeInbound(piece)
            while let part = try channel.readInbound(as: HTTPServerRequestPart.self) { append(event(part), to: &events) }
        }
        _ = try channel.finish()
        return events
    }

    static func nioResponses(_ methods: [HTTPMethod], _ pieces: [ByteBuffer]) throws -> [Event] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPResponseDecoder(leftOverBytesStrategy: .dropBytes)))
        // The decoder learns each response's method from the request heads written through it.
        for method in methods {
            try channel.writeOutbound(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: "/")))
        }
        var events: [Event] = []
        for piece in pieces {
            try channel.writeInbound(piece)
            while let part = try channel.readInbound(as: HTTPClientResponsePart.self) { append(event(part), to: &events) }
        }
        _ = try channel.finish()  // the EOF that ends a body running until close
        while let part = try channel.readInbound(as: HTTPClientResponsePart.self) { append(event(part), to: &events) }
        return events
    }

    /// Also checks that every call consumes all of its input (partial heads are kept inside).
    static func ourRequests(_ pieces: [ByteBuffer], maxHeadBytes: Int = 65536) throws(HTTPWireError) -> [Event] {
        var parser = HTTPRequestParser(maxHeadBytes: maxHeadBytes)
        var events: [Event] = []
        for var piece in pieces {
            try parser.parse(&piece) { append(event($0), to: &events) }
            #expect(piece.readableBytes == 0)
        }
        #expect(!parser.midMessage)
        return events
    }

    static func ourResponses(_ methods: [HTTPMethod], _ pieces: [ByteBuffer]) throws(HTTPWireError) -> [Event] {
        var parser = HTTPResponseParser()
        for method in methods { parser.requestSent(method) }
        var events: [Event] = []
        for var piece in pieces {
            try parser.parse(&piece) { append(event($0), to: &events) }
            #expect(piece.readableBytes == 0)
        }
        try parser.inputClosed { append(event($0), to: &events) }
        return events
    }

    // MARK: Differential

    @Test func requestsDecodeAsNIODecodesThem() async throws {
        let seed: UInt64 = 0x4854_5450_3131
        var rng = SplitMix64(seed: seed)
        for i in 0..<1_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let bytes = Self.randomRequestStream(&rng)
            let pieces = Self.split(bytes, &rng)
            let nio = Self.withoutTrailingOWS(try Self.nioRequests(pieces))
            let ours = try Self.ourRequests(pieces)
            try #require(
                ours == nio,
                "seed \(seed), stream \(i), \(pieces.count) pieces:\n\(String(decoding: bytes.prefix(600), as: UTF8.self))\nours:\n  \(Self.show(ours))\nNIO:\n  \(Self.show(nio))")
        }
    }

    @Test func responsesDecodeAsNIODecodesThem() async throws {
        let seed: UInt64 = 0x5245_5350
        var rng = SplitMix64(seed: seed)
        for i in 0..<1_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let (methods, bytes) = Self.randomResponseStream(&rng)
            let pieces = Self.split(bytes, &rng)
            let nio = Self.withoutTrailingOWS(try Self.nioResponses(methods, pieces))
            let ours = try Self.ourResponses(methods, pieces)
            try #require(
                ours == nio,
                "seed \(seed), stream \(i), methods \(methods):\n\(String(decoding: bytes.prefix(600), as: UTF8.self))\nours:\n  \(Self.show(ours))\nNIO:\n  \(Self.show(nio))")
        }
    }

    // MARK: Bad input

    enum Expected { case refused, malformed, tooLarge }

    static func outcome(_ bytes: [UInt8], maxHeadBytes: Int, byteByByte: Bool) -> HTTPWireError? {
        let pieces = byteByByte ? bytes.map { ByteBuffer(bytes: [$0]) } : [ByteBuffer(bytes: bytes)]
        do {
            _ = try ourRequests(pieces, maxHeadBytes: maxHeadBytes)
            return nil
        } catch {
            return error
        }
    }

    static let host = "GET / HTTP/1.1\r\nHost: a\r\n"
    static let badRequests: [(input: String, expected: Expected, status: HTTPResponseStatus, mentions: String)] = [
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", .refused, .badRequest, "Content-Length"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", .refused, .badRequest, "Content-Length"),
        ("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n", .refused, .badRequest, "Content-Length"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", .refused, .badRequest, "chunked"),
        (host + "X-A: b\r\n  folded\r\n\r\n", .malformed, .badRequest, "line 4"),
        ("GET / HTTP/1.1\r\nHost : a\r\n\r\n", .malformed, .badRequest, "line 2"),
        (host + "X-A: b\u{01}c\r\n\r\n", .malformed, .badRequest, "line 3"),
        (host + "X-A: b\rc\r\n\r\n", .malformed, .badRequest, "line 3"),
        ("GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", .malformed, .badRequest, "line"),  // "request line" or "line 1"
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", .malformed, .badRequest, "chunk size"),
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", .malformed, .badRequest, "chunk"),
        ("GET / HTTP/2.0\r\nHost: a\r\n\r\n", .malformed, .badRequest, "version"),
        (host + "X-Big: " + String(repeating: "v", count: 2000) + "\r\n\r\n", .tooLarge, .requestHeaderFieldsTooLarge, "too large"),
    ]

    @Test(arguments: badRequests.indices) func badRequestIsRejectedWithAReason(_ index: Int) throws {
        let (input, expected, status, mentions) = Self.badRequests[index]
        for byteByByte in [false, true] {
            let context = "case \(index) (byte by byte: \(byteByByte)): \(input.debugDescription.prefix(120))"
            let error = try #require(Self.outcome(Array(input.utf8), maxHeadBytes: 1024, byteByByte: byteByByte), "\(context)")
            switch (expected, error) {
            case (.refused, .refused), (.malformed, .malformed), (.tooLarge, .headTooLarge): break
            default: Issue.record("\(context): expected \(expected), got \(error)")
            }
            #expect(error.rejection.status == status, "\(context)")
            #expect(error.rejection.reason.contains(mentions), "\(context): \(error.rejection.reason)")
        }
    }

    /// What a limit admits must not depend on how TCP happens to segment it. Sizes around each
    /// limit: a head (maxHeadBytes) and a chunk-size line with an extension (1024 bytes).
    @Test func limitsDoNotDependOnSegmentation() throws {
        let limit = 1024
        let prefix = Self.host + "X-Pad: "
        let chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        for size in (limit - 2)...(limit + 3) {
            let inputs = [
                ("\(size)-byte head", prefix + String(repeating: "p", count: size - prefix.utf8.count - 4) + "\r\n\r\n"),
                ("\(size)-byte chunk-size line", chunked + "1;x=" + String(repeating: "e", count: size - 4) + "\r\nz\r\n0\r\n\r\n"),
            ]
            for (what, input) in inputs {
                let whole = Self.outcome(Array(input.utf8), maxHeadBytes: limit, byteByByte: false)
                let bytewise = Self.outcome(Array(input.utf8), maxHeadBytes: limit, byteByByte: true)
                #expect(whole == bytewise, "\(what), limit \(limit): whole \(String(describing: whole)), byte by byte \(String(describing: bytewise))")
            }
        }
    }

    /// The upstream's response is a protocol error only if the proxy can still answer 502 for it:
    /// no head may be passed on before contradictory framing is refused.
    @Test func responseWithContradictoryFramingEmitsNoHead() throws {
        for framing in ["Content-Length: 5\r\nTransfer-Encoding: chunked", "Content-Length: 5\r\nContent-Length: 6", "Content-Length: x"] {
            var parser = HTTPResponseParser()
            parser.requestSent(.GET)
            var input = ByteBuffer(string: "HTTP/1.1 200 OK\r\n\(framing)\r\n\r\nhello")
            var emitted: [Event] = []
            #expect(throws: HTTPWireError.self) { try parser.parse(&input) { emitted.append(Self.event($0)) } }
            #expect(emitted.isEmpty, "\(framing.debugDescription): emitted \(emitted) before throwing")
        }
    }

    @Test func responseCutShortIsAnError() {
        for input in ["HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "HTTP/1.1 200 O"] {
            var parser = HTTPResponseParser()
            parser.requestSent(.GET)
            var buffer = ByteBuffer(string: input)
            #expect(throws: Never.self) { try parser.parse(&buffer) { _ in } }
            #expect(throws: HTTPWireError.self, "\(input.debugDescription)") { try parser.inputClosed { _ in } }
        }
    }

    // MARK: Fuzz

    /// Mutated valid messages and random bytes: a result or an `HTTPWireError` (the typed throw
    /// guarantees the type), never a trap, never more body than bytes in, and nothing at all
    /// once an error has been thrown.
    @Test func mutatedAndRandomInputNeverTraps() async {
        let seed: UInt64 = 0xF022
        var rng = SplitMix64(seed: seed)
        let inserts: [UInt8] = [13, 10, 0, UInt8(ascii: ":"), 0x20, UInt8(ascii: ";"), UInt8(ascii: "0"), 0xFF]
        for i in 0..<5_200 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let asResponse = i % 2 == 1
            var methods: [HTTPMethod] = []
            var bytes: [UInt8]
            if i >= 5_000 {
                bytes = rng.bytes(rng.below(512))
                methods = [.GET]
            } else if asResponse {
                (methods, bytes) = Self.randomResponseStream(&rng)
            } else {
                bytes = Self.randomRequestStream(&rng)
            }
            if i < 5_000 {
                for _ in 0..<(1 + rng.below(4)) {
                    let at = rng.below(bytes.count + 1)
                    switch rng.below(3) {
                    case 0 where at < bytes.count: bytes[at] ^= UInt8(1) << rng.below(8)
                    case 1 where at < bytes.count: bytes.remove(at: at)
                    default: bytes.insert(rng.chance(4) ? UInt8(truncatingIfNeeded: rng.next()) : rng.pick(inserts), at: at)
                    }
                }
            }
            var bodyBytes = 0
            var failed = false
            var emittedAfterFailure = false
            var requests = HTTPRequestParser(maxHeadBytes: 4096)
            var responses = HTTPResponseParser(maxHeadBytes: 4096)
            for method in methods { responses.requestSent(method) }
            for var piece in Self.split(bytes, &rng) {
                do {
                    if asResponse {
                        try responses.parse(&piece) { part in
                            if case .body(let b) = part { bodyBytes += b.readableBytes }
                            emittedAfterFailure = emittedAfterFailure || failed
                        }
                    } else {
                        try requests.parse(&piece) { part in
                            if case .body(let b) = part { bodyBytes += b.readableBytes }
                            emittedAfterFailure = emittedAfterFailure || failed
                        }
                    }
                    #expect(piece.readableBytes == 0, "seed \(seed), input \(i): input left unread")
                } catch {
                    #expect(!failed, "seed \(seed), input \(i): threw twice")
                    failed = true
                }
            }
            if asResponse { _ = try? responses.inputClosed { _ in } }
            #expect(!emittedAfterFailure, "seed \(seed), input \(i): parts after an error")
            #expect(bodyBytes <= bytes.count, "seed \(seed), input \(i): \(bodyBytes) body bytes from \(bytes.count)")
        }
    }
}

extension SplitMix64 {
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    mutating func chance(_ oneIn: Int) -> Bool { below(oneIn) == 0 }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
    /// Random bytes, in a plain loop: closures capturing the generator `inout` tripped the
    /// runtime's exclusivity check when this suite ran in parallel with others.
    mutating func bytes(_ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        for _ in 0..<count { out.append(UInt8(truncatingIfNeeded: next())) }
        return out
    }
}
