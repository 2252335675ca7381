import Foundation
import MeshtraceTesting
import Testing
import TraceModel
@testable import TraceWire

@Suite struct OTLPProtoTests {
    @Test func roundTrip() throws {
        let spans = [Samples.richSpan(1), Samples.simpleSpan(2), Samples.richSpan(3)]
        let batch = try OTLPProto.decode(OTLPProto.encode(spans))
        #expect(batch.rejected.isEmpty)
        // Grouped by resource: the two rich spans come out together.
        #expect(batch.spans == [spans[0], spans[2], spans[1]])
        let req = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: OTLPProto.encode(spans))
        #expect(req.resourceSpans.count == 2)
        #expect(req.resourceSpans[0].resource.attributes.first?.key == "service.name")
    }

    @Test func sameAsJSON() throws {
        let body = try OTLPJSON.decode(bytes(OTLPJSONTests.specExample))
        let viaProto = try OTLPProto.decode(OTLPProto.encode(body.spans))
        #expect(viaProto.spans == body.spans)
    }

    @Test func zipkinRemoteEndpointBecomesAttributes() throws {
        var s = Samples.simpleSpan(1)
        s.remoteEndpoint = Endpoint(serviceName: "db", ipv4: "10.1.2.3", port: 5432)
        let back = try #require(try OTLPProto.decode(OTLPProto.encode([s])).spans.first)
        #expect(back.remoteEndpoint == s.remoteEndpoint)
        #expect(back.attribute("peer.service") == .string("db"))
        #expect(back.attribute("network.peer.address") == .string("10.1.2.3"))
    }

    /// Endpoint keys the span already carries, under any of their names, are not added again;
    /// the missing ones follow the span's own attributes, in the order service, address, port.
    @Test func remoteEndpointAttributesAreNotDuplicated() throws {
        var s = Samples.simpleSpan(1)
        s.attributes = [Attribute("net.peer.ip", .string("10.9.9.9")), Attribute("http.method", .string("GET"))]
        s.remoteEndpoint = Endpoint(serviceName: "db", ipv4: "10.1.2.3", port: 5432)
        let req = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: OTLPProto.encode([s]))
        let keys = req.resourceSpans.first?.scopeSpans.first?.spans.first?.attributes.map(\.key)
        #expect(keys == ["net.peer.ip", "http.method", "peer.service", "network.peer.port"])
        s.attributes.append(Attribute("peer.service", .string("other")))
        s.attributes.append(Attribute("net.sock.peer.port", .int(1)))
        let again = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest(serializedBytes: OTLPProto.encode([s]))
        #expect(again.resourceSpans.first?.scopeSpans.first?.spans.first?.attributes.count == 4, "nothing to add")
    }

    @Test func partialRejection() throws {
        typealias PSpan = Opentelemetry_Proto_Trace_V1_Span
        func span(_ edit: (inout PSpan) -> Void) -> PSpan {
            var p = OTLPProto.message(Samples.simpleSpan(5))
            edit(&p)
            return p
        }
        var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        ss.spans = [
            span { _ in },
            span { $0.traceID = Data(count: 16) },
            span { $0.traceID = Data([1, 2, 3]) },
            span { $0.spanID = Data(count: 8) },
            span { $0.parentSpanID = Data([1]) },
            span { $0.endTimeUnixNano = $0.startTimeUnixNano - 1 },
            span { $0.parentSpanID = Data(count: 8); $0.name = "" },
        ]
        var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        rs.scopeSpans = [Opentelemetry_Proto_Trace_V1_ScopeSpans(), ss]
        var req = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        req.resourceSpans = [rs]
        let batch = try OTLPProto.decode(try req.serializedBytes())
        #expect(batch.spans.count == 2)
        #expect(batch.spans[1].parentSpanID == nil && batch.spans[1].name == "")
        #expect(batch.spans[0].serviceName == "unknown_service")
        #expect(batch.rejected.map(\.location) == (1...5).map { "resourceSpans[0].scopeSpans[1].spans[\($0)]" })
        #expect(batch.rejected.map(\.reason) == [
            "traceId: all-zero trace id is invalid", "traceId: must be 16 bytes, got 3", "spanId: all-zero span id is invalid",
            "parentSpanId: must be empty or 8 bytes, got 1",
            "endTimeUnixNano (1700000000000004999) is before startTimeUnixNano (1700000000000005000)",
        ])
    }

    @Test func kvlistAndTruncation() throws {
        var kv = Opentelemetry_Proto_Common_V1_KeyValueList()
        var inner = Opentelemetry_Proto_Common_V1_KeyValue()
        inner.key = "a\"b"
        inner.value.stringValue = "c"
        kv.values = [inner]
        var attr = Opentelemetry_Proto_Common_V1_KeyValue()
        attr.key = "kv"
        attr.value.kvlistValue = kv
        var p = OTLPProto.message(Samples.simpleSpan(1))
        p.attributes = [attr, OTLPProto.keyValue(Attribute("big", .string(String(repeating: "ü", count: 9000))))]
        let batch = try OTLPProto.decode(try Self.request([p]).serializedBytes())
        #expect(batch.spans.first?.attribute("kv") == .string(#"{"a\"b":"c"}"#))
        #expect(batch.truncatedValues == 1)
        #expect(batch.spans.first?.attribute("big") == .string(String(repeating: "ü", count: 8192)))
    }

    @Test func malformedAndEmpty() throws {
        #expect(try OTLPProto.decode([]).spans.isEmpty)
        #expect(throws: WireError.self) { try OTLPProto.decode([0x0A, 0x05, 0x01]) }  // truncated length-delimited field
        #expect(throws: WireError.self) { try OTLPProto.decode(bytes("{\"resourceSpans\":[]}")) }
    }

    @Test func responses() throws {
        #expect(OTLPProto.encodeResponse(rejectedSpans: 0, errorMessage: nil).isEmpty)
        let r = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(
            serializedBytes: OTLPProto.encodeResponse(rejectedSpans: 2, errorMessage: "bad ids"))
        #expect(r.hasPartialSuccess && r.partialSuccess.rejectedSpans == 2 && r.partialSuccess.errorMessage == "bad ids")
        let w = try Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse(
            serializedBytes: OTLPProto.encodeResponse(rejectedSpans: 0, errorMessage: "warning"))
        #expect(w.hasPartialSuccess && w.partialSuccess.rejectedSpans == 0)
    }

    @Test func fuzz() {
        var g = SplitMix64(seed: 0x0719_0B0F)
        let valid = OTLPProto.encode([Samples.richSpan(1), Samples.simpleSpan(2)])
        var decoded = 0
        for i in 0..<4000 {
            let input = i % 4 == 3 ? Fuzz.randomBytes(&g) : Fuzz.mutate(valid, &g)
            do {
                let batch = try OTLPProto.decode(input)
                #expect(Fuzz.checkValid(batch), "iteration \(i)")
                decoded += 1
            } catch {
                #expect(error.message.contains("malformed protobuf"))
            }
        }
        #expect(decoded > 50)
    }

    /// `OTLPProto.encode` (by hand) against the generated code over random spans, several per
    /// request so grouping by resource and scope is covered: the same bytes.
    @Test func handEncoderWritesTheGeneratedBytes() async throws {
        var g = SplitMix64(seed: 0x07E1)
        let kinds: [SpanKind] = [.client, .server, .producer, .consumer, .internal, .unspecified]
        func text(_ max: Int) -> String { Fuzz.text(&g, max: max) }
        func value(_ depth: Int) -> AttributeValue {
            switch g.next() % (depth < 2 ? 7 : 6) {
            case 0: return .string(text(300))
            case 1: return .int(Int64(bitPattern: g.next() % 3 == 0 ? 0 : g.next()))
            case 2: return .bool(g.next() % 2 == 0)
            case 3: return .double([0, 1.5, -0.0, .infinity][Int(g.next() % 4)])
            case 4: return .bytes((0..<Int(g.next() % 5)).map { _ in UInt8(truncatingIfNeeded: g.next()) })
            case 5: return .string("")
            default: return .array((0..<Int(g.next() % 4)).map { _ in value(depth + 1) })
            }
        }
        func attributes() -> [Attribute] { (0..<Int(g.next() % 6)).map { _ in Attribute(text(8), value(0)) } }
        for i in 0..<500 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let spans = (0..<Int(1 + g.next() % 4)).map { n -> Span in
                var s = Samples.simpleSpan(UInt64(i * 8 + n + 1))
                s.traceID = TraceID(high: g.next(), low: g.next() | 1)
                s.parentSpanID = g.next() % 2 == 0 ? nil : SpanID(g.next() | 1)
                s.kind = kinds[Int(g.next() % UInt64(kinds.count))]
                s.name = text(40)
                s.serviceName = ["a", "b", ""][Int(g.next() % 3)]
                s.resource = g.next() % 2 == 0 ? [] : [Attribute("host.name", .string(text(5)))]
                s.scope = [nil, InstrumentationScope(name: "lib", version: nil), InstrumentationScope(name: "", version: "1")][Int(g.next() % 3)]
                s.startTimeNanos = [0, 999, g.next() >> 2][Int(g.next() % 3)]
                s.durationNanos = [0, 1, g.next() >> 30][Int(g.next() % 3)]
                s.traceState = [nil, "", "k=v"][Int(g.next() % 3)]
                s.attributes = attributes()
                s.status = [SpanStatus.unset, .error(nil), .error(text(20)), SpanStatus(code: .ok, message: "")][Int(g.next() % 4)]
                s.events = (0..<Int(g.next() % 3)).map { _ in SpanEvent(timeNanos: g.next() % 2 == 0 ? 0 : g.next(), name: text(10), attributes: attributes()) }
                s.links = (0..<Int(g.next() % 3)).map { _ in
                    SpanLink(traceID: TraceID(high: g.next(), low: g.next() | 1), spanID: SpanID(g.next() | 1) ?? SpanID(1)!,
                             traceState: [nil, "", "a=b"][Int(g.next() % 3)], attributes: attributes())
                }
                s.remoteEndpoint = g.next() % 2 == 0 ? nil : Endpoint(serviceName: g.next() % 2 == 0 ? nil : text(10), ipv4: "10.1.2.3", port: 8080)
                return s
            }
            try #require(OTLPProto.encode(spans) == OTLPProto.encodeWithGeneratedCode(spans), "request \(i): \(spans)")
        }
    }

    typealias PRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest

    /// One resource with one scope holding these spans.
    static func request(_ spans: [Opentelemetry_Proto_Trace_V1_Span]) -> PRequest {
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scope.spans = spans
        var resource = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        resource.scopeSpans = [scope]
        var request = PRequest()
        request.resourceSpans = [resource]
        return request
    }

    /// A request with every part the decoder reads: resource and scope, attributes of every
    /// value type (nested arrays and key-value lists included), events, a good and a bad link,
    /// a status, a span OTLP's rules reject, and a second resource.
    static func richRequest() throws -> [UInt8] {
        var list = Opentelemetry_Proto_Common_V1_KeyValueList()
        var nested = Opentelemetry_Proto_Common_V1_KeyValueList()
        nested.values = [OTLPProto.keyValue(Attribute("deep", .array([.int(1), .string("x")])))]
        var inner = OTLPProto.PKeyValue()
        inner.key = "inner"
        inner.value.kvlistValue = nested
        list.values = [OTLPProto.keyValue(Attribute("a", .string("b"))), inner, OTLPProto.PKeyValue()]
        var kv = OTLPProto.PKeyValue()
        kv.key = "kv"
        kv.value.kvlistValue = list
        var rich = OTLPProto.message(Samples.richSpan(1))
        rich.attributes += [kv, OTLPProto.keyValue(Attribute("nested", .array([.array([.bool(true)]), .double(0.5)]))),
                            OTLPProto.keyValue(Attribute("raw", .bytes([0, 1, 2])))]
        var good = Opentelemetry_Proto_Trace_V1_Span.Link()
        good.traceID = Data(repeating: 7, count: 16)
        good.spanID = Data(repeating: 8, count: 8)
        good.traceState = "k=v"
        good.attributes = [OTLPProto.keyValue(Attribute("link", .int(-3)))]
        var bad = good
        bad.spanID = Data([1])
        rich.links = [good, bad]
        rich.status.code = .error
        rich.status.message = "boom"
        var rejected = OTLPProto.message(Samples.simpleSpan(2))
        rejected.traceID = Data([1, 2, 3])
        var scope = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        scope.scope.name = "lib"
        scope.scope.version = "1.0"
        scope.spans = [rich, rejected, OTLPProto.message(Samples.simpleSpan(3))]
        var resource = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        resource.resource.attributes = [OTLPProto.keyValue(Attribute("host.name", .string("h"))),
                                        OTLPProto.keyValue(Attribute("service.name", .string("orders")))]
        resource.scopeSpans = [Opentelemetry_Proto_Trace_V1_ScopeSpans(), scope]
        var other = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        var plain = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        plain.spans = [OTLPProto.message(Samples.simpleSpan(4))]
        other.scopeSpans = [plain]
        var request = PRequest()
        request.resourceSpans = [resource, other]
        return try request.serializedBytes()
    }

    @Test func richRequestReadsAsTheGeneratedCodeReadsIt() throws {
        let body = try Self.richRequest()
        let hand = try OTLPProto.decode(body)
        let reference = try OTLPProto.decodeWithGeneratedCode(body)
        #expect(hand.spans == reference.spans)
        #expect(hand.rejected == reference.rejected)
        #expect(hand.spans.count == 3 && hand.rejected.count == 1)
        let rich = try #require(hand.spans.first)
        #expect(rich.serviceName == "orders" && rich.resource == [Attribute("host.name", .string("h"))])
        #expect(rich.scope == InstrumentationScope(name: "lib", version: "1.0"))
        #expect(rich.attribute("kv") == .string(#"{"a":"b","inner":{"deep":[1,"x"]},"":null}"#))
        #expect(rich.attribute("nested") == .array([.array([.bool(true)]), .double(0.5)]))
        #expect(rich.links.count == 1 && rich.status == .error("boom"))
        #expect(hand.spans[2].serviceName == "unknown_service")
    }

    /// The hand-written decoder against the one on SwiftProtobuf's generated code, over fuzzed
    /// requests: the same spans and rejections, or both errors. Where only the generated code
    /// fails, it is for text that is not UTF-8, which the hand decoder repairs.
    @Test func handDecoderAgreesWithGeneratedCode() async throws {
        var g = SplitMix64(seed: 0x0A7)
        let valid = try Self.richRequest()
        var agreed = 0
        var repaired = 0
        for i in 0..<3000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let input = i == 0 ? valid : i % 4 == 3 ? Fuzz.randomBytes(&g) : Fuzz.mutate(valid, &g)
            let hand = Result { () throws(WireError) in try OTLPProto.decode(input) }
            let reference = Result { () throws(WireError) in try OTLPProto.decodeWithGeneratedCode(input) }
            switch (hand, reference) {
            case (.success(let a), .success(let b)):
                #expect(a.spans == b.spans, "iteration \(i): \(ZipkinProtoTests.difference(a.spans, b.spans)); input \(ZipkinProtoTests.hex(input))")
                #expect(a.rejected == b.rejected && a.truncatedValues == b.truncatedValues, "iteration \(i)")
                agreed += 1
            case (.failure, .failure):
                agreed += 1
            case (.success, .failure(let e)):
                #expect(e.message.contains("invalidUTF8"), "iteration \(i): \(e); input \(ZipkinProtoTests.hex(input))")
                repaired += 1
            case (.failure(let e), .success):
                Issue.record("iteration \(i): only the hand decoder failed: \(e); input \(ZipkinProtoTests.hex(input))")
            }
        }
        #expect(agreed > 2500 && repaired > 0)
    }

    @Test func textThatIsNotUTF8IsRepairedAndTheSpansKept() throws {
        var p = OTLPProto.message(Samples.simpleSpan(1))
        p.name = "caf\u{E9}"
        var body = try Self.request([p, OTLPProto.message(Samples.simpleSpan(2))]).serializedBytes() as [UInt8]
        // é is C3 A9 in UTF-8: a lone C3 is not UTF-8.
        let at = try #require(body.firstIndex(of: 0xA9))
        body[at] = 0x20
        #expect(throws: WireError.self) { try OTLPProto.decodeWithGeneratedCode(body) }
        let batch = try OTLPProto.decode(body)
        #expect(batch.spans.map(\.name) == ["caf\u{FFFD} ", "op2"])
    }

    @Test func malformedRequestsNameWhereTheyBroke() throws {
        // A span whose bytes end in a field key of wire type 7 (there is none): the error names
        // the span, and nothing of the request is kept.
        func wrap(_ field: Int, _ inner: [UInt8]) -> [UInt8] {
            let w = ProtoWriter()
            inner.withUnsafeBytes { w.bytes(field: field, $0) }
            return w.bytes
        }
        let span = try OTLPProto.message(Samples.simpleSpan(1)).serializedBytes() as [UInt8]
        let broken = wrap(1, wrap(2, wrap(2, span) + wrap(2, span + [0x0F])))
        #expect(throws: WireError("resourceSpans[0].scopeSpans[0].spans[1]: malformed protobuf: wire type 7")) { try OTLPProto.decode(broken) }
        // A request cut short names the outermost part it cut.
        let cut = Array(try Self.richRequest().prefix(200))
        #expect(throws: WireError("resourceSpans[0]: malformed protobuf: truncated")) { try OTLPProto.decode(cut) }
        // Nested deeper than protobuf's parsers go.
        var value = OTLPProto.PAnyValue()
        value.stringValue = "x"
        for _ in 0..<120 {
            var array = Opentelemetry_Proto_Common_V1_ArrayValue()
            array.values = [value]
            value = OTLPProto.PAnyValue()
            value.arrayValue = array
        }
        var kv = OTLPProto.PKeyValue()
        kv.key = "deep"
        kv.value = value
        var p = OTLPProto.message(Samples.simpleSpan(1))
        p.attributes = [kv]
        let deep = try Self.request([p]).serializedBytes() as [UInt8]
        #expect(throws: WireError.self) { try OTLPProto.decodeWithGeneratedCode(deep) }
        let error = try #require(throws: WireError.self) { try OTLPProto.decode(deep) }
        #expect(error.message.hasPrefix("resourceSpans[0].scopeSpans[0].spans[0].attributes[0]: malformed protobuf: values nested too deep"))
    }
}
