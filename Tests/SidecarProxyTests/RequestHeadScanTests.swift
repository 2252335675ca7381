import Foundation
import NIOCore
import NIOHTTP1
import Testing
import TraceModel

@testable import SidecarProxy

@Suite struct RequestHeadScanTests {
    /// Names the scan treats specially, in mixed case, plus ordinary ones and near misses.
    static let names = [
        "Host", "host", "User-Agent", "Connection", "connection", "Keep-Alive", "TE", "Trailer", "Upgrade", "Transfer-Encoding",
        "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Expect", "Content-Length", "traceparent", "TraceState",
        "b3", "X-B3-TraceId", "X-B3-SpanId", "X-B3-ParentSpanId", "X-B3-Sampled", "X-B3-Flags", "X-Request-Id",
        "x-envoy-downstream-service-cluster", "x-meshtrace-via", "x-client-trace-id", "x-envoy-force-trace",
        "Accept", "X-Foo", "x-bar", "baggage", "sw8", "x-datadog-trace-id", "hosts", "b4", "x-request-ids", "Contentlength",
    ]
    static let values = ["", "1", "close", "keep-alive, X-Foo", "Upgrade, x-bar", "upgrade", "websocket", "WebSocket, h2c", "100-continue", "100-Continue ", "chunked",
                         "gzip, chunked", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a b"]

    static let hopByHop: Set<String> = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
                                         "proxy-authorization", "proxy-authenticate"]
    /// Written by the hop itself. `sw8` too: with sw8 configured the hop writes its own, and
    /// otherwise `TraceDecision.inject` writes the incoming first value back (Sw8HopTests).
    static let rewritten: Set<String> = ["traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid",
                                          "x-b3-sampled", "x-b3-flags", "sw8", "x-request-id", "x-envoy-downstream-service-cluster",
                                          "x-meshtrace-via"]

    /// What a proxy must forward as it came, written the slow and obvious way (values as a
    /// parser delivers them, without surrounding whitespace; Host is written by the proxy itself).
    static func reference(_ headers: [(String, String)]) -> [(String, String)] {
        var listed = Set<String>()
        for (name, value) in headers where name.lowercased() == "connection" {
            for token in value.split(separator: ",") {
                let t = token.trimmingCharacters(in: .init(charactersIn: " \t")).lowercased()
                if !t.isEmpty, t != "close", t != "keep-alive" { listed.insert(t) }
            }
        }
        let trimmed = headers.map { ($0.0, $0.1.trimmingCharacters(in: .init(charactersIn: " \t"))) }
        return trimmed.filter { name, value in
            let lower = name.lowercased()
            if lower == "host" || hopByHop.contains(lower) || rewritten.contains(lower) || listed.contains(lower) { return false }
            if lower == "expect" && value.trimmingCharacters(in: .init(charactersIn: " \t")).lowercased() == "100-continue" { return false }
            return true
        }
    }

    @Test func randomizedHeaderListsMatchTheReference() async {
        var rng = SplitMix64(seed: 42)
        for round in 0..<3_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let count = Int(rng.next() % 12)
            let headers = (0..<count).map { _ in
                (Self.names[Int(rng.next() % UInt64(Self.names.count))], Self.values[Int(rng.next() % UInt64(Self.values.count))])
            }
            let scan = RequestHeadScan(HTTPHeaders(headers))
            let expected = Self.reference(headers)
            let kept = scan.keptFields
            #expect(kept.map(\.0) == expected.map(\.0), "round \(round): \(headers)")
            #expect(kept.map(\.1) == expected.map(\.1), "round \(round)")
            let firstValue = { (name: String) in
                headers.first { $0.0.lowercased() == name }.map { $0.1.trimmingCharacters(in: .init(charactersIn: " \t")) }
            }
            #expect(scan.host == firstValue("host"))
            #expect(scan.userAgent == firstValue("user-agent"))
            #expect(scan.requestID == firstValue("x-request-id"))
            // W3C's fields keep every line, joined as HTTP combines repeated fields (Trace Context
            // Level 2: several tracestate lines are one list; two traceparent lines restart).
            let combined = { (name: String) -> String? in
                let values = headers.filter { $0.0.lowercased() == name }.map { $0.1.trimmingCharacters(in: .init(charactersIn: " \t")) }
                return values.isEmpty ? nil : values.joined(separator: ",")
            }
            #expect(scan.trace.first("traceparent") == combined("traceparent"))
            #expect(scan.trace.first("tracestate") == combined("tracestate"))
            #expect(scan.trace.first("x-b3-parentspanid") == firstValue("x-b3-parentspanid"))
            #expect(scan.downstreamCluster == firstValue("x-envoy-downstream-service-cluster"))
            #expect(scan.loopMarked == (firstValue("x-meshtrace-via") != nil))
            #expect(scan.chunked == headers.contains { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased().contains("chunked") })
            let hostListed = headers.contains { name, value in
                name.lowercased() == "connection" && value.split(separator: ",").contains { $0.trimmingCharacters(in: .init(charactersIn: " \t")).lowercased() == "host" }
            }
            #expect(scan.hostListedInConnection == hostListed)
            // Every value the proxy can tag a span with is found by name, in any case.
            for name in ["accept", "X-FOO", "user-agent", "x-client-trace-id", "host", "x-request-id", "traceparent", "b3", "baggage"] {
                let lower = name.lowercased()
                let expectedValue = lower == "traceparent" || lower == "tracestate" ? combined(lower)
                    : lower == "host" || Self.rewritten.contains(lower) ? firstValue(lower) : expected.first { $0.0.lowercased() == lower }?.1
                #expect(scan.first(name) == expectedValue, "round \(round): \(name) in \(headers)")
            }
        }
    }

    /// The scan keeps its own length-keyed list of hop-by-hop names (for speed); it must agree
    /// with `HopByHop.fixed`, which strips responses.
    @Test func theScanAndResponseStrippingAgreeOnHopByHopNames() {
        for name in HopByHop.fixed {
            let kind = RequestHeadScan.classify(name)
            #expect([.hopByHop, .connection, .transferEncoding, .upgrade].contains(kind), "\(name) -> \(kind)")
            #expect(RequestHeadScan.classify(name.uppercased()) == kind)
        }
        #expect(Set(Self.hopByHop) == Set(HopByHop.fixed), "the reference list in this test is the same list")
        // The response parser's byte-level names, too: every fixed name, in any case, and no other.
        func parserKind(_ name: String) -> FieldName.Kind {
            Array(name.utf8).withUnsafeBytes { FieldName.kind($0, 0..<$0.count) }
        }
        for name in HopByHop.fixed {
            #expect(parserKind(name).isHopByHop, "\(name)")
            #expect(parserKind(name.uppercased()) == parserKind(name))
        }
        for name in ["content-length", "Content-Length", "host", "x-connection", "connectio", "tee", "upgrades", "date"] {
            #expect(!parserKind(name).isHopByHop, "\(name)")
        }
        #expect(parserKind("Content-LENGTH") == .contentLength)
    }

    @Test func internedNamesAreTheBytesAsSent() {
        for name in ["Host", "host", "HOST", "Content-Type", "content-TYPE", "traceparent", "X-Custom-Thing", "b3", "B3"] {
            let bytes = Array(name.utf8)
            let interned = bytes.withUnsafeBytes { FieldName.interned($0, 0..<$0.count) }
            if let interned { #expect(interned == name, "interning keeps the case as sent") }
        }
        #expect(Array("Host".utf8).withUnsafeBytes { FieldName.interned($0, 0..<$0.count) } != nil)
        #expect(Array("HOST".utf8).withUnsafeBytes { FieldName.interned($0, 0..<$0.count) } == nil)
    }

    @Test func expectContinueIsAnsweredNotForwardedButOtherExpectationsAre() {
        let continuing = RequestHeadScan(HTTPHeaders([("Expect", "100-continue"), ("Host", "a")]))
        #expect(continuing.expectsContinue)
        #expect(continuing.keptFields.isEmpty)
        #expect(continuing.host == "a")
        let other = RequestHeadScan(HTTPHeaders([("Expect", "something-else")]))
        #expect(!other.expectsContinue)
        #expect(other.keptFields.map(\.0) == ["Expect"])
    }

    @Test func aConnectionListedContentLengthNoLongerCounts() {
        let scan = RequestHeadScan(HTTPHeaders([("Content-Length", "5"), ("Connection", "content-length")]))
        #expect(scan.contentLength == nil)
        #expect(scan.keptFields.isEmpty)
    }

    /// Skipping extraction when no trace header came is the same as extracting from nothing, and
    /// any one trace header makes the carrier non-empty.
    @Test func emptyTraceCarrierShortcut() {
        #expect(TraceHeaders().isEmpty)
        #expect(TracePropagation.extract(TraceHeaders()) == IncomingTrace())
        for slot in TraceHeaders.Slot.allCases {
            var headers = TraceHeaders()
            headers.set(slot, "x")
            #expect(!headers.isEmpty, "\(slot)")
            #expect(headers.first(slot.name) == "x")
            #expect(headers.first(slot.name.uppercased()) == "x")
        }
    }

    /// A WebSocket handshake needs both `Connection: upgrade` and `websocket` among the
    /// `Upgrade` protocols; neither field is forwarded as it came (the proxy writes its own).
    @Test func webSocketHandshakesAreRecognized() {
        func scan(_ fields: [(String, String)]) -> RequestHeadScan {
            var headers = HTTPHeaders()
            for (name, value) in fields { headers.add(name: name, value: value) }
            return RequestHeadScan(headers)
        }
        #expect(scan([("Connection", "keep-alive, Upgrade"), ("Upgrade", "WebSocket")]).webSocketUpgrade)
        #expect(scan([("connection", "upgrade"), ("upgrade", "h2c, websocket")]).webSocketUpgrade)
        #expect(!scan([("Connection", "Upgrade"), ("Upgrade", "h2c")]).webSocketUpgrade, "h2c upgrades are dropped, as Envoy drops them")
        #expect(!scan([("Upgrade", "websocket")]).webSocketUpgrade, "Upgrade without Connection: upgrade does not upgrade")
        #expect(!scan([("Connection", "upgrade")]).webSocketUpgrade)
        let handshake = scan([("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "k")])
        #expect(handshake.keptFields.map { $0.0.lowercased() } == ["sec-websocket-key"])
    }

    /// After a handshake every byte is the new protocol's: read as body until the close, never
    /// as another request.
    @Test func aHandshakeIsFollowedByRawBytes() throws {
        var parser = HTTPRequestParser(maxHeadBytes: 4096)
        var input = ByteBuffer(string: "GET /ws HTTP/1.1\r\nHost: chat\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                                   + "\u{81}\u{05}hello GET / HTTP/1.1\r\n\r\n")
        var parts: [String] = []
        try parser.parseForwarding(&input, allocator: ByteBufferAllocator()) { part in
            switch part {
            case .head(let head): parts.append("head \(head.uri) upgrade=\(head.scan.webSocketUpgrade)")
            case .body(let bytes): parts.append("body \(bytes.readableBytes)")
            case .end: parts.append("end")
            }
        }
        #expect(parts == ["head /ws upgrade=true", "body 27"])  // U+0081 is two bytes of UTF-8
    }
}
