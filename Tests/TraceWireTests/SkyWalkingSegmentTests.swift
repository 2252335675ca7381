import Testing
import TraceModel

@testable import TraceWire

/// SkyWalking segments as spans. The interop test (tests/interop/test_skywalking.py) decodes
/// what the real Python agent sends; these pin the mapping rules and the bad-input answers.
@Suite struct SkyWalkingSegmentTests {
    /// Shaped as the Python agent's HTTP reporter writes it: enums by name, refType by number.
    static let segment = """
        {"traceId":"6a1e3c6c0c1e11ef9f5e0242ac120002","traceSegmentId":"seg-1","service":"backend",
         "serviceInstance":"b1@10.0.0.2","isSizeLimited":false,"spans":[
          {"spanId":1,"parentSpanId":0,"startTime":1700000000010,"endTime":1700000000030,"operationName":"/db",
           "peer":"db:5432","spanType":"Exit","spanLayer":"Http","componentId":7002,"isError":true,
           "logs":[{"time":1700000000020,"data":[{"key":"event","value":"error"},{"key":"message","value":"boom"}]}],
           "tags":[{"key":"http.method","value":"GET"}],"refs":[]},
          {"spanId":0,"parentSpanId":-1,"startTime":1700000000000,"endTime":1700000000050,"operationName":"/checkout",
           "peer":"10.0.0.1:5000","spanType":"Entry","spanLayer":"Http","componentId":7000,"isError":false,"logs":[],"tags":[],
           "refs":[{"refType":0,"traceId":"6a1e3c6c0c1e11ef9f5e0242ac120002","parentTraceSegmentId":"00f067aa0ba902b7",
                    "parentSpanId":0,"parentService":"backend","parentServiceInstance":"backend-sidecar",
                    "parentEndpoint":"/checkout","networkAddressUsedAtPeer":"127.0.0.1:8080"}]},
          {"spanId":2,"parentSpanId":0,"startTime":"1700000000031","endTime":"1700000000040","operationName":"render",
           "spanType":2,"spanLayer":0,"componentId":99999}
        ]}
        """

    @Test func mapsKindsParentsTagsLogsAndComponents() throws {
        let batch = try SkyWalkingSegment.decodeJSON(Array(Self.segment.utf8), array: false)
        #expect(batch.rejected.isEmpty)
        try #require(batch.spans.count == 3)
        let (exit, entry, local) = (batch.spans[0], batch.spans[1], batch.spans[2])
        let trace = try #require(TraceID(hex: "6a1e3c6c0c1e11ef9f5e0242ac120002"))
        #expect(batch.spans.allSatisfy { $0.traceID == trace && $0.serviceName == "backend" })

        #expect(entry.kind == .server && entry.name == "/checkout")
        #expect(entry.spanID == SkyWalkingIDs.spanID(segment: "seg-1", index: 0))
        // The cross-process reference names the sidecar's span: its own id, unhashed.
        #expect(entry.parentSpanID?.hex == "00f067aa0ba902b7")
        #expect(entry.attribute("sw8.parent.service") == .string("backend"))
        #expect(entry.attribute("component") == .string("Python"))
        #expect(entry.startTimeNanos == 1_700_000_000_000_000_000 && entry.durationNanos == 50_000_000)
        #expect(entry.resource.contains(Attribute("service.instance.id", .string("b1@10.0.0.2"))))

        #expect(exit.kind == .client && exit.parentSpanID == entry.spanID)
        #expect(exit.status.code == .error && exit.isError)
        #expect(exit.attribute("component") == .string("Requests") && exit.attribute("peer.address") == .string("db:5432"))
        #expect(exit.attribute("http.method") == .string("GET"))
        #expect(exit.events == [SpanEvent(timeNanos: 1_700_000_000_020_000_000, name: "error", attributes: [Attribute("message", .string("boom"))])])
        // What the sidecar reads from the agent's sw8 for this exit span is this span.
        let sw8 = "1-" + Base64.encode("6a1e3c6c0c1e11ef9f5e0242ac120002") + "-" + Base64.encode("seg-1") + "-1-"
            + Base64.encode("backend") + "-" + Base64.encode("b1") + "-" + Base64.encode("/checkout") + "-" + Base64.encode("db:5432")
        #expect(Sw8Propagation.extract(sw8)?.spanID == exit.spanID)

        #expect(local.kind == .internal && local.parentSpanID == entry.spanID)
        #expect(local.attribute("component") == .string("99999"))
        #expect(local.attribute("sw8.trace_id") == nil)
    }

    @Test func hashedTraceIdsAreKeptAsATag() throws {
        let body = #"{"traceId":"a1b2c3.45.16790000000001","traceSegmentId":"s","service":"java","spans":[{"spanId":0,"parentSpanId":-1,"startTime":1,"endTime":2,"operationName":"x","spanType":"Entry","spanLayer":"MQ"}]}"#
        let span = try #require(try SkyWalkingSegment.decodeJSON(Array(body.utf8), array: false).spans.first)
        #expect(span.traceID.hex32 == "c92da5b6d17ae7a7f808d0c3f09229dc")
        #expect(span.attribute("sw8.trace_id") == .string("a1b2c3.45.16790000000001"))
        #expect(span.kind == .consumer)
    }

    @Test func badSegmentsAreNamedAndTheRestKept() throws {
        let good = #"{"traceId":"t1","traceSegmentId":"s1","service":"a","spans":[{"spanId":0,"parentSpanId":-1,"startTime":5,"endTime":6,"operationName":"ok","spanType":"Local"}]}"#
        let body = "[" + [
            good,
            #"{"traceId":"t2","traceSegmentId":"s2","service":"a","spans":[{"spanId":0,"parentSpanId":-1,"startTime":5,"endTime":6,"spanType":"Sideways"},{"spanId":1,"parentSpanId":0,"startTime":5,"endTime":6,"operationName":"later","spanType":"Exit","spanLayer":-1}]}"#,
            #"{"traceId":"","traceSegmentId":"s3","service":"a","spans":[]}"#,
            #"{"traceId":"t4","traceSegmentId":"s4","service":"a","spans":[{"spanId":0,"parentSpanId":-1,"startTime":9,"endTime":3},{"spanId":1,"parentSpanId":0,"startTime":9,"endTime":10}]}"#,
            #"{"traceId":"t5","traceSegmentId":"s5","service":"a","spans":[{"spanId":"zero"},{"spanId":1,"parentSpanId":-1,"startTime":1,"endTime":1,"operationName":"kept"},{"spanId":2,"startTime":9,"endTime":1}]}"#,
            "7",
        ].joined(separator: ",") + "]"
        let batch = try SkyWalkingSegment.decodeJSON(Array(body.utf8), array: true)
        #expect(batch.spans.map(\.name) == ["ok", "unknown", "kept"])
        // A span that cannot be read or placed costs only itself; the indices stay those of the body.
        #expect(batch.rejected.map(\.location) == [
            "segments[1].spans[0].spanType", "segments[1].spans[1].spanLayer", "segments[2].traceId", "segments[3].spans[0].endTime",
            "segments[4].spans[0].spanId", "segments[4].spans[2].endTime", "segments[5]",
        ])
        #expect(batch.rejected[0].reason.contains("\"Sideways\"") && batch.rejected[0].reason.contains("Entry, Exit, Local"))
        #expect(batch.rejected[6].reason.contains("expected an object"))
    }

    @Test func bodiesThatAreNotSegmentsFailWhole() {
        for (body, array) in [("not json", false), ("[]x", true), (#"{"traceId":"t"}"#, true), ("[1]", false)] {
            #expect(throws: WireError.self) { try SkyWalkingSegment.decodeJSON(Array(body.utf8), array: array) }
        }
    }

    /// The binary form the gRPC receiver decodes: the generated message's own encoding of the
    /// JSON segment above decodes to the same spans.
    @Test func protoAndJSONAgree() throws {
        let json = try SkyWalkingSegment.decodeJSON(Array(Self.segment.utf8), array: false)
        let message = try SkyWalkingJSON.segment(JSONParser.parse(Array(Self.segment.utf8)), at: "segment").segment
        let bytes: [UInt8] = try message.serializedBytes()
        let proto = try SkyWalkingSegment.decodeProto(bytes, at: "message[0]")
        #expect(proto.spans == json.spans)
        #expect(throws: WireError.self) { try SkyWalkingSegment.decodeProto([0x0A, 0xFF], at: "message[0]") }
    }
}
