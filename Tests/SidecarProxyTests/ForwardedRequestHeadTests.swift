import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing
import TraceModel

@testable import SidecarProxy

/// The proxy reads requests with `HTTPRequestParser.parseForwarding` (fields kept as wire bytes)
/// and writes them upstream as `UpstreamRequestHead`. These hold that path to the NIO-typed
/// parse (itself held to NIO's decoder) and to the slow reference of what a proxy forwards.
@Suite struct ForwardedRequestHeadTests {
    typealias Parser = HTTP1ParserTests

    /// Heads with the names the scan treats specially, in mixed case, with and without bodies.
    static func randomRequest(_ rng: inout SplitMix64) -> (bytes: [UInt8], fields: [(String, String)]) {
        var fields: [(String, String)] = []
        for _ in 0..<rng.below(10) {
            let name = String(decoding: Parser.mixedCase(rng.pick(RequestHeadScanTests.names).lowercased(), &rng), as: UTF8.self)
            var value = rng.pick(RequestHeadScanTests.values)
            if rng.chance(4) { value = " " + value + "\t" }
            fields.append((name, value))
        }
        if !fields.contains(where: { $0.0.lowercased() == "host" }) || rng.chance(5) { fields.append(("Host", "svc.local")) }
        let method = rng.pick(["GET", "POST", "PUT", "DELETE", "PATCH"])
        var text = "\(method) /p/\(rng.below(100))?q=1 HTTP/1.1\r\n"
        for (name, value) in fields { text += "\(name):\(rng.chance(3) ? "" : " ")\(value)\r\n" }
        var bytes = Array((text + "\r\n").utf8)
        // Bodies only where the head frames one as declared; otherwise the head decides alone.
        if let length = fields.first(where: { $0.0.lowercased() == "content-length" }), Int(length.1.trimmingCharacters(in: .whitespaces)) == 1 {
            bytes += [UInt8(ascii: "x")]
        }
        return (bytes, fields)
    }

    enum Outcome: Equatable {
        case failed(HTTPWireError)
        case parts([String])
    }

    /// The NIO-typed parse, its heads described by what the proxy forwards of them.
    static func typed(_ pieces: [ByteBuffer]) -> Outcome {
        var parser = HTTPRequestParser(maxHeadBytes: 4096)
        var parts: [String] = []
        do {
            for var piece in pieces {
                try parser.parse(&piece) { part in
                    switch part {
                    case .head(let head): parts.append(describe(head.method, head.uri, head.version, RequestHeadScan(head.headers)))
                    case .body(let b): parts.append("body \(b.readableBytes)")
                    case .end(let t): parts.append("end \(t.map { "\($0)" } ?? "-")")
                    }
                }
            }
        } catch {
            return .failed(error)
        }
        return .parts(parts)
    }

    static func forwarding(_ pieces: [ByteBuffer]) -> Outcome {
        var parser = HTTPRequestParser(maxHeadBytes: 4096)
        var parts: [String] = []
        do {
            for var piece in pieces {
                try parser.parseForwarding(&piece, allocator: ByteBufferAllocator()) { part in
                    switch part {
                    case .head(let head): parts.append(describe(head.method, head.uri, head.version, head.scan))
                    case .body(let b): parts.append("body \(b.readableBytes)")
                    case .end(let t): parts.append("end \(t.map { "\($0)" } ?? "-")")
                    }
                }
                #expect(piece.readableBytes == 0)
            }
        } catch {
            return .failed(error)
        }
        return .parts(parts)
    }

    static func describe(_ method: HTTPMethod, _ uri: String, _ version: HTTPVersion, _ scan: RequestHeadScan) -> String {
        let trace = TraceHeaders.Slot.allCases.map { scan.trace.first($0.name) ?? "-" }
        return "\(method) \(uri) \(version) kept=\(scan.keptFields) host=\(scan.host ?? "-")/\(scan.hostListedInConnection) "
            + "ua=\(scan.userAgent ?? "-") id=\(scan.requestID ?? "-") cl=\(scan.contentLength ?? "-") chunked=\(scan.chunked) "
            + "continue=\(scan.expectsContinue) cluster=\(scan.downstreamCluster ?? "-") loop=\(scan.loopMarked) "
            + "client=\(scan.clientTraceID ?? "-") force=\(scan.forceTrace) close=\(scan.connectionClose) ka=\(scan.connectionKeepAlive) trace=\(trace) "
            + "upgrade=\(scan.upgrade ?? "-")/\(scan.webSocketUpgrade)"
    }

    /// Valid and mutated heads, split anywhere: both parses accept and refuse the same input with
    /// the same error, and read the same request from what they accept.
    @Test func forwardingParseDecidesAsTheTypedParse() async {
        let seed: UInt64 = 0xF0_4A4D
        var rng = SplitMix64(seed: seed)
        var accepted = 0
        for i in 0..<4_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            var (bytes, _) = Self.randomRequest(&rng)
            if i % 2 == 1 {
                for _ in 0..<(1 + rng.below(3)) {
                    let at = rng.below(bytes.count)
                    switch rng.below(3) {
                    case 0: bytes[at] ^= UInt8(1) << rng.below(8)
                    case 1: bytes.remove(at: at)
                    default: bytes.insert(rng.pick([13, 10, 0, UInt8(ascii: ":"), 0x20, 0x09, 0xFF]), at: at)
                    }
                }
            }
            let pieces = Parser.split(bytes, &rng)
            let typed = Self.typed(pieces)
            let forwarding = Self.forwarding(pieces)
            #expect(typed == forwarding, "seed \(seed), input \(i): \(String(decoding: bytes, as: UTF8.self).debugDescription)")
            if case .parts(let parts) = forwarding, !parts.isEmpty { accepted += 1 }
        }
        #expect(accepted > 1_000, "the generator should produce mostly valid heads (\(accepted) accepted)")
    }

    /// What reaches the upstream, read back by NIO's decoder: the request line, Host first, the
    /// proxy's fields, then the kept ones exactly as the reference says a proxy forwards them.
    @Test func upstreamHeadIsWhatNIOReadsBack() async throws {
        var rng = SplitMix64(seed: 77)
        for i in 0..<1_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let (bytes, fields) = Self.randomRequest(&rng)
            guard case .parts = Self.forwarding([ByteBuffer(bytes: bytes)]) else { continue }
            var parser = HTTPRequestParser(maxHeadBytes: 4096)
            var input = ByteBuffer(bytes: bytes)
            var head: DownstreamRequestHead?
            try parser.parseForwarding(&input, allocator: ByteBufferAllocator()) { if case .head(let h) = $0 { head = h } }
            let read = try #require(head)
            let added = [("host", read.scan.host ?? "none"), ("x-meshtrace-via", "outbound"), ("traceparent", "00-\(String(repeating: "a", count: 32))-\(String(repeating: "b", count: 16))-01")]
            let upstream = UpstreamRequestHead(method: read.method, target: "/u/\(i)", added: added, forwarded: read.scan.kept, allocator: ByteBufferAllocator())
            #expect(upstream.method == read.method)
            #expect(upstream.chunked == false)

            let channel = EmbeddedChannel(handler: ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.writeInbound(upstream.bytes)
            let part = try #require(try channel.readInbound(as: HTTPServerRequestPart.self))
            guard case .head(let decoded) = part else {
                Issue.record("input \(i): no head")
                continue
            }
            _ = try? channel.finish()
            #expect(decoded.method == read.method)
            #expect(decoded.uri == "/u/\(i)")
            #expect(decoded.version == .http1_1)
            let expected = added + RequestHeadScanTests.reference(fields)
            #expect(decoded.headers.map(\.name) == expected.map(\.0), "input \(i)")
            #expect(decoded.headers.map(\.value) == expected.map(\.1), "input \(i)")
        }
        let chunked = UpstreamRequestHead(method: .POST, target: "/", added: [("Transfer-Encoding", "chunked")], forwarded: ByteBuffer(), allocator: ByteBufferAllocator())
        #expect(chunked.chunked)
    }

    /// The case tests the proxy uses instead of `==` agree with it for every method NIO parses,
    /// and the parser gives each known name its own case.
    @Test func methodCaseTestsAgreeWithEquality() {
        let names = ["GET", "PUT", "ACL", "HEAD", "POST", "COPY", "LOCK", "MOVE", "BIND", "LINK", "PATCH", "TRACE", "MKCOL", "MERGE",
                     "PURGE", "NOTIFY", "SEARCH", "UNLOCK", "REBIND", "UNBIND", "REPORT", "DELETE", "UNLINK", "CONNECT", "MSEARCH",
                     "OPTIONS", "PROPFIND", "CHECKOUT", "PROPPATCH", "SUBSCRIBE", "MKCALENDAR", "MKACTIVITY", "UNSUBSCRIBE", "SOURCE",
                     "connect", "head", "BREW"]
        for name in names {
            let parsed = Array(name.utf8).withUnsafeBytes { HTTPSyntax.method($0, 0..<$0.count) }
            #expect(parsed == HTTPMethod(rawValue: name), "\(name)")
            #expect(parsed.isCONNECT == (parsed == .CONNECT), "\(name)")
            #expect(parsed.isHEAD == (parsed == .HEAD), "\(name)")
            #expect(parsed.sendsBody == (parsed == .POST || parsed == .PUT || parsed == .PATCH), "\(name)")
        }
    }

    /// Custom span tags read request headers by name: every one the app sent, in any case.
    @Test func customTagHeadersAreFoundByName() {
        let scan = RequestHeadScan(HTTPHeaders([("X-Tenant", "acme"), ("x-tenant", "second"), ("User-Agent", "curl/8"), ("Host", "h"), ("x-request-id", "r1")]))
        #expect(scan.first("x-tenant") == "acme")
        #expect(scan.first("X-TENANT") == "acme")
        #expect(scan.first("user-agent") == "curl/8")
        #expect(scan.first("host") == "h")
        #expect(scan.first("X-Request-ID") == "r1")
        #expect(scan.first("x-missing") == nil)
        #expect(scan.first("x-tenan") == nil)
    }
}
