import Testing
import TraceModel
@testable import TraceWire

@Suite struct OTLPJSONTests {
    static let specExample = #"""
        {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"my.service"}}]},
         "scopeSpans":[{"scope":{"name":"my.library","version":"1.0.0"},
          "spans":[{"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","parentSpanId":"EEE19B7EC3C1B173",
                    "name":"I'm a server span","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
                    "kind":2,"attributes":[{"key":"my.span.attr","value":{"stringValue":"some value"}}]}]}]}]}
        """#

    @Test func decodesSpecExample() throws {
        let batch = try OTLPJSON.decode(bytes(Self.specExample))
        #expect(batch.rejected.isEmpty)
        let s = try #require(batch.spans.first)
        #expect(batch.spans.count == 1)
        #expect(s.traceID.hex == "5b8efff798038103d269b633813fc60c")
        #expect(s.spanID.hex == "eee19b7ec3c1b174")
        #expect(s.parentSpanID?.hex == "eee19b7ec3c1b173")
        #expect(s.name == "I'm a server span")
        #expect(s.kind == .server)
        #expect(s.startTimeNanos == 1_544_712_660_000_000_000)
        #expect(s.durationNanos == 1_000_000_000)
        #expect(s.serviceName == "my.service")
        #expect(s.resource.isEmpty)
        #expect(s.scope == InstrumentationScope(name: "my.library", version: "1.0.0"))
        #expect(s.attributes == [Attribute("my.span.attr", .string("some value"))])
    }

    @Test func roundTrip() throws {
        var a = Samples.richSpan(1)
        a.attributes.append(Attribute("nan", .double(.nan)))
        a.attributes.removeLast()  // NaN != NaN: checked separately below
        let b = Samples.richSpan(2)
        var c = Samples.simpleSpan(3, service: "other")
        c.kind = .unspecified
        let batch = try OTLPJSON.decode(OTLPJSON.encode([a, b, c]))
        #expect(batch.rejected.isEmpty)
        #expect(batch.spans == [a, b, c])
        let out = text(OTLPJSON.encode([a, b, c]))
        #expect(out.components(separatedBy: "\"resource\"").count == 3)  // a and b share one resource group
        #expect(out.contains(#""intValue":"500""#))
        #expect(out.contains(#""traceId":"5b8efff798038103d269b633813fc60c""#))

        var d = Samples.simpleSpan(4)
        d.attributes = [Attribute("x", .double(.infinity)), Attribute("y", .double(-.infinity))]
        #expect(try OTLPJSON.decode(OTLPJSON.encode([d])).spans == [d])
    }

    @Test func base64IDsAndNumberTimes() throws {
        let trace = Samples.trace
        let body = """
            {"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"\(Base64.encode(trace.bytes))","spanId":"\(Base64.encode(SpanID(0x0102030405060708)!.bytes))",
             "parentSpanId":"AQIDBAUGBwk","startTimeUnixNano":1544712660000000000,"endTimeUnixNano":1.5447126610e18,"kind":"SPAN_KIND_CLIENT",
             "status":{"code":"STATUS_CODE_ERROR","message":"bad"}}]}]}]}
            """
        let batch = try OTLPJSON.decode(bytes(body))
        #expect(batch.rejected == [])
        let s = try #require(batch.spans.first)
        #expect(s.traceID == trace)
        #expect(s.spanID.value == 0x0102030405060708)
        #expect(s.parentSpanID?.value == 0x0102030405060709)  // unpadded base64 (11 chars)
        #expect(s.durationNanos == 1_000_000_000)
        #expect(s.kind == .client)
        #expect(s.status == .error("bad"))
        #expect(s.serviceName == "unknown_service")
    }

    @Test func partialRejectionKeepsValidSpans() throws {
        func span(_ fields: String) -> String {
            #"{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","startTimeUnixNano":"10","endTimeUnixNano":"20","# + fields + "}"
        }
        let spans = [
            span(#""name":"ok""#),
            span(#""traceId":"00000000000000000000000000000000""#),
            span(#""spanId":"abc""#),
            span(#""endTimeUnixNano":"5""#),
            span(#""parentSpanId":"zz""#),
            #"{"spanId":"eee19b7ec3c1b174"}"#,
            span(#""traceId":"5b8efff798038103""#),
            span(#""name":"ok too","parentSpanId":"""#),
        ]
        let body = #"{"resourceSpans":[{"scopeSpans":[{"spans":["# + spans.joined(separator: ",") + "]}]}]}"
        let batch = try OTLPJSON.decode(bytes(body))
        #expect(batch.spans.map(\.name) == ["ok", "ok too"])
        #expect(batch.rejected.map(\.location) == (1...6).map { "resourceSpans[0].scopeSpans[0].spans[\($0)]" })
        #expect(batch.rejected[0].reason.contains("all-zero"))
        #expect(batch.rejected[1].reason.hasPrefix("spanId: must be 16 hex characters"))
        #expect(batch.rejected[2].reason.contains("before startTimeUnixNano"))
        #expect(batch.rejected[4].reason == "traceId: missing")
        #expect(batch.rejected[5].reason == "traceId: must be 16 bytes, got 8")
    }

    @Test func resourceAfterScopeSpansAndOtherValueKinds() throws {
        let body = #"""
            {"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
              "attributes":[{"key":"b","value":{"boolValue":true}},{"key":"i","value":{"intValue":"-7"}},{"key":"d","value":{"doubleValue":"NaN"}},
                {"key":"bytes","value":{"bytesValue":"AAAwOQ=="}},{"key":"arr","value":{"arrayValue":{"values":[{"intValue":1},{"stringValue":"x"}]}}},
                {"key":"kv","value":{"kvlistValue":{"values":[{"key":"a","value":{"intValue":"1"}},{"key":"n","value":{"kvlistValue":{"values":[]}}}]}}},
                {"key":"empty","value":{}},{"key":"peer.service","value":{"stringValue":"db"}},{"key":"network.peer.port","value":{"intValue":5432}}],
              "events":[{"timeUnixNano":"15","name":"e","attributes":[{"key":"x","value":{"stringValue":"y"}}]}],
              "links":[{"traceId":"5b8efff798038103d269b633813fc60d","spanId":"eee19b7ec3c1b175","traceState":"k=v"},{"traceId":"bad","spanId":"x"}],
              "futureField":{"nested":[1,2,3]}}],"scope":{"name":"lib"}}],
             "resource":{"attributes":[{"key":"service.name","value":{"stringValue":"late"}},{"key":"host","value":{"stringValue":"h"}}]}}]}
            """#
        let batch = try OTLPJSON.decode(bytes(body))
        let s = try #require(batch.spans.first)
        #expect(s.serviceName == "late")
        #expect(s.resource == [Attribute("host", .string("h"))])
        #expect(s.scope == InstrumentationScope(name: "lib"))
        #expect(s.attribute("b") == .bool(true))
        #expect(s.attribute("i") == .int(-7))
        if case .double(let d)? = s.attribute("d") { #expect(d.isNaN) } else { Issue.record("d") }
        #expect(s.attribute("bytes") == .bytes([0, 0, 0x30, 0x39]))
        #expect(s.attribute("arr") == .array([.int(1), .string("x")]))
        #expect(s.attribute("kv") == .string(#"{"a":1,"n":{}}"#))
        #expect(s.attribute("empty") == .string(""))
        #expect(s.remoteEndpoint == Endpoint(serviceName: "db", port: 5432))
        #expect(s.events == [SpanEvent(timeNanos: 15, name: "e", attributes: [Attribute("x", .string("y"))])])
        #expect(s.links.count == 1)  // the bad link is dropped, the span kept
        #expect(s.links.first?.traceState == "k=v")
    }

    @Test(arguments: [
        "[]", "{", #"{"resourceSpans":{}}"#, #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":5}]}]}]}"#,
        #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#,
        #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"boolValue":"yes"}}]}]}]}]}"#,
        #"{"resourceSpans":[{"scopeSpans":[{"spans":[{"attributes":[{"key":"a","value":{"bytesValue":"!!"}}]}]}]}]}"#,
        #"{"resourceSpans":[]} x"#,
    ])
    func malformedBodiesThrow(_ body: String) {
        #expect(throws: WireError.self) { try OTLPJSON.decode(bytes(body)) }
    }

    @Test func typeErrorNamesThePath() {
        let body = #"{"resourceSpans":[{"scopeSpans":[{},{"spans":[{},{"startTimeUnixNano":"soon"}]}]}]}"#
        do {
            _ = try OTLPJSON.decode(bytes(body))
            Issue.record("expected error")
        } catch {
            #expect(error.message == #"resourceSpans[0].scopeSpans[1].spans[1].startTimeUnixNano: expected an unsigned 64-bit integer, got "soon""#)
        }
    }

    @Test func emptyAndUnknown() throws {
        #expect(try OTLPJSON.decode([]).spans.isEmpty)
        #expect(try OTLPJSON.decode(bytes("{}")).spans.isEmpty)
        #expect(try OTLPJSON.decode(bytes(#"{"resourceSpans":[],"x":[{"y":null}]}"#)).spans.isEmpty)
    }

    @Test func depthAndTruncation() throws {
        let deep = #"{"x":"# + String(repeating: "[", count: 80) + String(repeating: "]", count: 80) + "}"
        #expect(throws: WireError("JSON nested deeper than 64 levels")) { try OTLPJSON.decode(bytes(deep)) }
        let big = String(repeating: "x", count: 20_000)
        let body = #"{"resourceSpans":[{"resource":{"attributes":[{"key":"r","value":{"stringValue":""# + big + #""}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","attributes":[{"key":"a","value":{"stringValue":""# + big + #""}},{"key":"arr","value":{"arrayValue":{"values":[{"stringValue":""# + big + #""}]}}}]}]}]}]}"#
        let batch = try OTLPJSON.decode(bytes(body), limits: WireLimits(maxAttributeValueBytes: 100))
        #expect(batch.truncatedValues == 3)
        #expect(batch.spans.first?.attribute("a") == .string(String(repeating: "x", count: 100)))
        #expect(batch.spans.first?.attribute("arr") == .array([.string(String(repeating: "x", count: 100))]))
        #expect(batch.spans.first?.resource == [Attribute("r", .string(String(repeating: "x", count: 100)))])
    }

    @Test func responses() {
        #expect(text(OTLPJSON.encodeResponse(rejectedSpans: 0, errorMessage: nil)) == "{}")
        #expect(text(OTLPJSON.encodeResponse(rejectedSpans: 3, errorMessage: "bad \"ids\""))
            == #"{"partialSuccess":{"rejectedSpans":"3","errorMessage":"bad \"ids\""}}"#)
        #expect(text(OTLPJSON.encodeResponse(rejectedSpans: 0, errorMessage: "warn")) == #"{"partialSuccess":{"errorMessage":"warn"}}"#)
    }

    @Test func fuzz() {
        var g = SplitMix64(seed: 0x07_1B_15)
        let valid = OTLPJSON.encode([Samples.richSpan(1), Samples.simpleSpan(2)])
        let spec = bytes(Self.specExample)
        var decoded = 0
        for i in 0..<4000 {
            let input: [UInt8]
            switch i % 3 {
            case 0: input = Fuzz.mutate(valid, &g, interesting: Fuzz.jsonBytes)
            case 1: input = Fuzz.mutate(spec, &g, interesting: Fuzz.jsonBytes)
            default: input = Fuzz.randomBytes(&g)
            }
            do {
                let batch = try OTLPJSON.decode(input)
                #expect(Fuzz.checkValid(batch), "iteration \(i)")
                decoded += 1
            } catch {
                #expect(!error.message.isEmpty)
            }
        }
        #expect(decoded > 50)
    }
}
