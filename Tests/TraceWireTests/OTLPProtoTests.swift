import Foundation
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
        var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
        ss.spans = [p]
        var rs = Opentelemetry_Proto_Trace_V1_ResourceSpans()
        rs.scopeSpans = [ss]
        var req = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest()
        req.resourceSpans = [rs]
        let batch = try OTLPProto.decode(try req.serializedBytes())
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
                #expect(error.message.hasPrefix("malformed protobuf"))
            }
        }
        #expect(decoded > 50)
    }
}
