import Foundation
import Testing
import TraceModel
@testable import TraceWire

@Suite struct ZipkinJSONTests {
    static let specExample = #"""
        [{"id":"352bff9a74ca9ad2","traceId":"5af7183fb1d4cf5f","parentId":"6b221d5bc9e6496c","name":"get /api",
         "timestamp":1556604172355737,"duration":1431,"kind":"SERVER",
         "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},
         "remoteEndpoint":{"ipv4":"172.19.0.2","port":58648},
         "tags":{"http.method":"GET","http.path":"/api"}}]
        """#

    @Test func decodesSpecExample() throws {
        let batch = try ZipkinJSON.decode(bytes(Self.specExample))
        #expect(batch.spans.count == 1)
        let s = try #require(batch.spans.first)
        #expect(s.traceID == TraceID(high: 0, low: 0x5af7183fb1d4cf5f))
        #expect(s.spanID.hex == "352bff9a74ca9ad2")
        #expect(s.parentSpanID?.hex == "6b221d5bc9e6496c")
        #expect(s.name == "get /api")
        #expect(s.kind == .server)
        #expect(s.startTimeNanos == 1_556_604_172_355_737_000)
        #expect(s.durationNanos == 1_431_000)
        #expect(s.serviceName == "backend")
        #expect(s.localEndpoint == Endpoint(ipv4: "192.168.99.1", port: 3306))
        #expect(s.remoteEndpoint == Endpoint(ipv4: "172.19.0.2", port: 58648))
        #expect(s.attributes == [Attribute("http.method", .string("GET")), Attribute("http.path", .string("/api"))])
        #expect(s.status == .unset)
    }

    @Test func encodesInV2SpanWriterOrder() throws {
        let s = try #require(try ZipkinJSON.decode(bytes(Self.specExample)).spans.first)
        let expected = #"[{"traceId":"5af7183fb1d4cf5f","parentId":"6b221d5bc9e6496c","id":"352bff9a74ca9ad2","kind":"SERVER","name":"get /api","timestamp":1556604172355737,"duration":1431,"localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},"remoteEndpoint":{"ipv4":"172.19.0.2","port":58648},"tags":{"http.method":"GET","http.path":"/api"}}]"#
        #expect(text(ZipkinJSON.encode([s])) == expected)
    }

    @Test func roundTrip() throws {
        var a = Samples.simpleSpan(1)
        a.events = [SpanEvent(timeNanos: 1_700_000_000_000_002_000, name: "ws")]
        a.attributes.append(Attribute("error", .string("bad")))
        a.status = .error("bad")
        a.debug = true
        a.shared = true
        a.remoteEndpoint = Endpoint(serviceName: "db", ipv6: "2001:db8::1", port: 5432)
        a.localEndpoint = Endpoint(ipv4: "10.0.0.1")
        var b = Samples.simpleSpan(2, service: "other")
        b.traceID = Samples.trace
        b.parentSpanID = SpanID(1)
        b.kind = .unspecified
        let decoded = try ZipkinJSON.decode(ZipkinJSON.encode([a, b]))
        #expect(decoded.spans == [a, b])
    }

    @Test func encodeTracesAndStatusTags() throws {
        var s = Samples.simpleSpan(3)
        s.status = .error("timeout")
        s.kind = .internal
        s.durationNanos = 1  // rounds up to 1 µs
        let out = text(ZipkinJSON.encode(traces: [[s], []]))
        #expect(out.hasPrefix("[[{"))
        #expect(out.hasSuffix("}],[]]"))
        #expect(out.contains(#""duration":1,"#))
        #expect(!out.contains("\"kind\""))
        #expect(out.contains(#""tags":{"k":"v3","otel.status_code":"ERROR","error":"timeout"}"#))
        // Rich attribute values are rendered as strings.
        let rich = text(ZipkinJSON.encode([Samples.richSpan()]))
        #expect(rich.contains(#""http.status_code":"500""#))
        #expect(rich.contains(#""blob":"AAAwOQ==""#))
        #expect(rich.contains(#""list":"[\"a\",2]""#))
        #expect(rich.contains(#""value":"{\"retry\":{\"attempt\":2}}""#))
        _ = try JSONParser.parse(ZipkinJSON.encode([Samples.richSpan()]))
    }

    @Test func emptyBodies() throws {
        #expect(try ZipkinJSON.decode([]).spans.isEmpty)
        #expect(try ZipkinJSON.decode(bytes(" [ ] \n")).spans.isEmpty)
        #expect(text(ZipkinJSON.encode([])) == "[]")
    }

    @Test func missingFieldsDefaults() throws {
        let s = try #require(try ZipkinJSON.decode(bytes(#"[{"traceId":"5AF7183FB1D4CF5F00000000000000AB","id":"000000000000000A","parentId":"0000000000000000"}]"#)).spans.first)
        #expect(s.traceID == TraceID(high: 0x5af7183fb1d4cf5f, low: 0xab))
        #expect(s.parentSpanID == nil)  // an all-zero parent reads as "root", as Zipkin does
        #expect(s.serviceName == "unknown")
        #expect(s.kind == .unspecified)
        #expect(s.durationNanos == 0 && s.startTimeNanos == 0)
        #expect(s.localEndpoint == nil && s.remoteEndpoint == nil)
    }

    @Test func unknownFieldsAndNullsIgnored() throws {
        let body = #"[{"traceId":"0000000000000001","id":"0000000000000002","extra":{"deep":[1,{"x":null}]},"name":null,"tags":{"a":"b","n":null},"localEndpoint":{"serviceName":"svc","foo":1}}]"#
        let s = try #require(try ZipkinJSON.decode(bytes(body)).spans.first)
        #expect(s.serviceName == "svc")
        #expect(s.attributes == [Attribute("a", .string("b"))])
    }

    @Test func errorTagSetsStatus() throws {
        let body = #"[{"traceId":"0000000000000001","id":"0000000000000002","tags":{"error":"connection refused"}}]"#
        let s = try #require(try ZipkinJSON.decode(bytes(body)).spans.first)
        #expect(s.status == .error("connection refused"))
        #expect(s.attribute("error") == .string("connection refused"))
    }

    /// `tags` is a map: a key that comes again keeps its first place and takes the last value,
    /// as Jackson (Zipkin) and Go's encoding/json (Jaeger) read it; common and other names alike.
    @Test func repeatedTagKeysKeepTheLastValue() throws {
        let body = #"[{"traceId":"0000000000000001","id":"0000000000000002","tags":{"http.method":"GET","mine":"1","error":"a","http.method":"POST","other":"x","mine":"2","error":"b"}}]"#
        let s = try #require(try ZipkinJSON.decode(bytes(body)).spans.first)
        #expect(s.attributes == [
            Attribute("http.method", .string("POST")), Attribute("mine", .string("2")),
            Attribute("error", .string("b")), Attribute("other", .string("x")),
        ])
        #expect(s.status == .error("b"))
    }

    static let badSpans: [(String, String)] = [
        (#"{"traceId":"xyz","id":"0000000000000002"}"#, #"spans[1].traceId: must be 16 or 32 hex characters, got "xyz""#),
        (#"{"traceId":"000000000000000g","id":"0000000000000002"}"#, "spans[1].traceId: must be 16 or 32 hex characters"),
        (#"{"traceId":"00000000000000000000000000000000","id":"0000000000000002"}"#, "spans[1].traceId: all-zero"),
        (#"{"traceId":"00000000000000001","id":"0000000000000002"}"#, "spans[1].traceId: must be 16 or 32"),
        (#"{"traceId":"0000000000000001","id":"0000000000000002","kind":"WEIRD"}"#, "spans[1].kind: must be CLIENT, SERVER, PRODUCER or CONSUMER"),
        (#"{"traceId":"0000000000000001","id":"0000000000000000"}"#, "spans[1].id: all-zero"),
        (#"{"traceId":"0000000000000001","id":"00000000000000021"}"#, "spans[1].id: must be 16 hex"),
        (#"{"traceId":"0000000000000001","id":"0000000000000002","parentId":"abc"}"#, "spans[1].parentId: must be 16 hex"),
        (#"{"traceId":"0000000000000001","id":"0000000000000002","duration":-5}"#, "spans[1].duration: must not be negative"),
        (#"{"traceId":"0000000000000001","id":"0000000000000002","timestamp":-1}"#, "spans[1].timestamp: must not be negative"),
        (#"{"traceId":"0000000000000001","id":"0000000000000002","timestamp":"now"}"#, "spans[1].timestamp"),
        (#"{"traceId":"0000000000000001","id":"0000000000000002","timestamp":99999999999999999}"#, "spans[1].timestamp: out of range"),
        (#"{"id":"0000000000000002"}"#, "spans[1].traceId: required"),
        (#"{"traceId":"0000000000000001"}"#, "spans[1].id: required"),
        (#"{"traceId":"0000000000000001","id":"0000000000000002","tags":{"a":{}}}"#, "spans[1].tags.a: tag values must be strings"),
        (#"{"traceId":"0000000000000001","id":"0000000000000002","annotations":[{"value":"x"}]}"#, "spans[1].annotations[0]: timestamp is required"),
        (#""notaspan""#, "spans[1]: expected a span object"),
    ]

    @Test(arguments: badSpans)
    func badSpanRejectsWholeBatch(_ bad: (String, String)) {
        let body = #"[{"traceId":"0000000000000001","id":"0000000000000001"},"# + bad.0 + "]"
        do {
            let batch = try ZipkinJSON.decode(bytes(body))
            Issue.record("decoded \(batch.spans.count) spans")
        } catch {
            #expect(error.message.hasPrefix(bad.1), "\(error.message)")
            #expect(error.kind == .malformed)
        }
    }

    @Test func v1IsDetected() {
        let v1 = #"[{"traceId":"0000000000000001","id":"0000000000000002","name":"x","annotations":[],"binaryAnnotations":[{"key":"k","value":"v"}]}]"#
        #expect(throws: WireError("Expected a JSON_V2 encoded list, but received: JSON_V1")) { try ZipkinJSON.decode(bytes(v1)) }
        let v1Annotation = #"[{"traceId":"0000000000000001","id":"0000000000000002","annotations":[{"timestamp":1,"value":"sr","endpoint":{"serviceName":"a"}}]}]"#
        #expect(throws: WireError("Expected a JSON_V2 encoded list, but received: JSON_V1")) { try ZipkinJSON.decode(bytes(v1Annotation)) }
    }

    @Test(arguments: ["{}", "[", "[{]", "[{\"traceId\":\"0000000000000001\",\"id\":\"0000000000000002\"}", "nope", "[1,]", "\"x\""])
    func malformedBodies(_ body: String) {
        #expect(throws: WireError.self) { try ZipkinJSON.decode(bytes(body)) }
    }

    @Test func overDeepNesting() {
        let deep = #"[{"traceId":"0000000000000001","id":"0000000000000002","x":"# + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "}]"
        do {
            _ = try ZipkinJSON.decode(bytes(deep))
            Issue.record("expected depth error")
        } catch {
            #expect(error.message.hasSuffix("JSON nested deeper than 64 levels"), "\(error.message)")
        }
        // A smaller limit applies too.
        let body = #"[{"traceId":"0000000000000001","id":"0000000000000002","x":[[[1]]]}]"#
        #expect(throws: WireError.self) { try ZipkinJSON.decode(bytes(body), limits: WireLimits(maxJSONDepth: 4)) }
        #expect((try? ZipkinJSON.decode(bytes(body), limits: WireLimits(maxJSONDepth: 5)))?.spans.count == 1)
    }

    @Test func hugeTagValuesAreTruncated() throws {
        let big = String(repeating: "é", count: 10_000)  // 20_000 bytes
        let body = #"[{"traceId":"0000000000000001","id":"0000000000000002","tags":{"big":""# + big + #"","small":"ok"}}]"#
        let batch = try ZipkinJSON.decode(bytes(body))
        #expect(batch.truncatedValues == 1)
        guard case .string(let v)? = batch.spans.first?.attribute("big") else {
            Issue.record("missing tag")
            return
        }
        #expect(v.utf8.count == 16_384)
        #expect(v == String(repeating: "é", count: 8192))
        let odd = try ZipkinJSON.decode(bytes(body), limits: WireLimits(maxAttributeValueBytes: 5))
        #expect(odd.spans.first?.attribute("big") == .string("éé"))  // 4 bytes: the 5th would split a scalar
        #expect(odd.truncatedValues == 1)
    }

    @Test func fuzz() {
        var g = SplitMix64(seed: 0x21_9B1A)
        var richSpan = Samples.richSpan()
        richSpan.remoteEndpoint = Endpoint(serviceName: "db", ipv4: "1.2.3.4", port: 1)
        let valid = ZipkinJSON.encode([richSpan, Samples.simpleSpan(7)])
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
                let batch = try ZipkinJSON.decode(input)
                #expect(Fuzz.checkValid(batch), "iteration \(i)")
                decoded += 1
            } catch {
                #expect(!error.message.isEmpty)
            }
        }
        #expect(decoded > 50)
    }
}

@Suite struct CommonStringsTests {
    /// Every common name comes back as itself; near misses and other bytes decode as usual.
    @Test func sharedNamesMatchExactlyAndEverythingElseDecodes() async {
        for name in CommonStrings.tagNames {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            #expect(CommonStrings.tagName(ArraySlice(name.utf8)).name == name)
            #expect(CommonStrings.tagName(ArraySlice(name.utf8)).common.map { CommonStrings.tagNames[$0] } == name)
            // A change at any position is a different name (names are matched by their first and
            // last eight bytes, then in full).
            for position in name.utf8.indices.map({ name.utf8.distance(from: name.utf8.startIndex, to: $0) }) {
                var changed = Array(name.utf8)
                changed[position] ^= 0x20
                let found = CommonStrings.tagName(ArraySlice(changed))
                #expect(found.name == String(decoding: changed, as: UTF8.self))
                #expect(found.common == nil || CommonStrings.tagNames.contains(found.name))
            }
        }
        var rng = SplitMix64(seed: 5)
        for _ in 0..<2_000 {
            let bytes = (0..<Int(rng.next() % 50)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(CommonStrings.tagName(ArraySlice(bytes)).name == String(decoding: bytes, as: UTF8.self))
        }
    }
}

@Suite struct RepeatedTagValuesTests {
    /// A batch decodes to exactly the spans its members decode to one by one, whatever repeats
    /// between them: values are reused from the previous span only when their bytes match, values
    /// over the size limit are truncated (and counted) every time, and escapes are decoded.
    @Test func batchDecodesAsItsSpansDoAlone() throws {
        var rng = SplitMix64(seed: 0xBA7C)
        let values = ["GET", "POST", "PUT", "GET ", "proxy", "http://a/1", "http://a/2", "http://b/1", "",
                      "tab\there", "quote\"d", "é😀", String(repeating: "x", count: 40), String(repeating: "y", count: 40)]
        let keys = ["http.method", "http.url", "component", "user_agent", "custom.key", "error", "node_id"]
        let limits = WireLimits(maxAttributeValueBytes: 32)
        for _ in 0..<200 {
            var spans: [String] = []
            for i in 0..<Int(rng.next() % 8 + 1) {
                var w = JSONWriter()
                w.beginObject()
                w.member("traceId", "00000000000000\(String(format: "%02x", i + 1))")
                w.member("id", "00000000000000\(String(format: "%02x", i + 1))")
                w.key("remoteEndpoint")
                w.beginObject()
                w.member("serviceName", values[Int(rng.next() % UInt64(values.count))])
                w.member("port", Int64(rng.next() % 70_000))
                w.endObject()
                w.key("tags")
                w.beginObject()
                for key in keys where rng.next() % 4 != 0 { w.member(key, values[Int(rng.next() % UInt64(values.count))]) }
                w.endObject()
                w.endObject()
                spans.append(text(w.bytes))
            }
            let batch = try ZipkinJSON.decode(bytes("[" + spans.joined(separator: ",") + "]"), limits: limits)
            var truncated = 0
            for (i, span) in spans.enumerated() {
                let alone = try ZipkinJSON.decode(bytes("[" + span + "]"), limits: limits)
                #expect(batch.spans[i] == alone.spans[0], "span \(i) of \(spans)")
                truncated += alone.truncatedValues
            }
            #expect(batch.truncatedValues == truncated)
        }
    }
}

@Suite struct ZipkinSpanMemberTests {
    @Test func membersAreRecognizedByTheirExactBytes() {
        for member in ZipkinJSON.SpanMember.allCases where member != .other {
            #expect(ZipkinJSON.SpanMember(ArraySlice(member.name.utf8)) == member)
            #expect(ZipkinJSON.SpanMember(ArraySlice((member.name + "x").utf8)) == .other)
            #expect(ZipkinJSON.SpanMember(ArraySlice(member.name.uppercased().utf8)) == .other)
        }
        #expect(ZipkinJSON.SpanMember(ArraySlice("".utf8)) == .other)
    }

    /// Errors still name the member they happened in, known or not.
    @Test func errorsNameTheMember() throws {
        let unknown = #"[{"traceId":"0000000000000001","id":"0000000000000002","custom":[1,}]"#
        #expect(throws: WireError.self) { try ZipkinJSON.decode(Array(unknown.utf8)) }
        do {
            _ = try ZipkinJSON.decode(Array(unknown.utf8))
        } catch {
            #expect(error.message.hasPrefix("spans[0].custom: "), "\(error.message)")
        }
        let known = #"[{"traceId":"0000000000000001","id":"zz"}]"#
        do {
            _ = try ZipkinJSON.decode(Array(known.utf8))
            Issue.record("a bad id was accepted")
        } catch {
            #expect(error.message.hasPrefix("spans[0].id: "), "\(error.message)")
        }
    }
}
