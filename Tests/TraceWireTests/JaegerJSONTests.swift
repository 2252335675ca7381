import Testing
import TraceModel
@testable import TraceWire

@Suite struct JaegerJSONTests {
    @Test func traceShape() throws {
        var child = Samples.richSpan(1)
        child.attributes.append(Attribute("big", .int(9_223_372_036_854_775_222)))
        child.attributes.append(Attribute("error", .string("boom")))
        child.remoteEndpoint = Endpoint(serviceName: "db", ipv4: "10.0.0.1", port: 5432)
        var other = Samples.simpleSpan(2, service: "svc-b")
        other.traceID = Samples.trace
        var third = Samples.richSpan(3)
        third.status = .unset
        third.kind = .internal
        let v = try JSONParser.parse(JaegerJSON.trace([child, other, third]))
        #expect(v["traceID"]?.stringValue == "5b8efff798038103d269b633813fc60c")
        #expect(v["warnings"] == .null)
        let spans = try #require(v["spans"]?.arrayValue)
        #expect(spans.count == 3)
        let s = spans[0]
        #expect(s["spanID"]?.stringValue == child.spanID.hex)
        #expect(s["operationName"]?.stringValue == "GET /api/1")
        #expect(s["flags"]?.int64Value == 1)
        #expect(s["startTime"]?.int64Value == 1_544_712_660_000_001)
        #expect(s["duration"]?.int64Value == 1_000_000)
        #expect(s["processID"]?.stringValue == "p1")
        #expect(s["warnings"] == .null)
        #expect(s["references"] == .array([
            .object([("refType", .string("CHILD_OF")), ("traceID", .string(child.traceID.hex)), ("spanID", .string("eee19b7ec3c1b0ff"))]),
            .object([("refType", .string("FOLLOWS_FROM")), ("traceID", .string("0000000000000007")), ("spanID", .string("0000000000000009"))]),
        ]))
        let tags = try #require(s["tags"]?.arrayValue)
        func tag(_ key: String) -> JSONValue? { tags.first { $0["key"]?.stringValue == key } }
        #expect(tag("http.status_code") == .object([("key", .string("http.status_code")), ("type", .string("int64")), ("value", .number("500"))]))
        #expect(tag("big")?["value"] == .string("9223372036854775222"))
        #expect(tag("ratio")?["type"]?.stringValue == "float64")
        #expect(tag("ratio")?["value"]?.doubleValue == 0.25)
        #expect(tag("blob")?["type"]?.stringValue == "binary")
        #expect(tag("blob")?["value"]?.stringValue == "AAAwOQ==")
        #expect(tag("sampled")?["value"] == .bool(true))
        #expect(tag("span.kind")?["value"]?.stringValue == "server")
        #expect(tag("error")?["value"] == .bool(true))
        #expect(tags.filter { $0["key"]?.stringValue == "error" }.count == 1)
        #expect(tag("otel.status_code")?["value"]?.stringValue == "ERROR")
        #expect(tag("otel.status_description")?["value"]?.stringValue == "boom")
        #expect(tag("peer.service")?["value"]?.stringValue == "db")
        #expect(tag("peer.ipv4")?["value"]?.stringValue == "10.0.0.1")
        #expect(tag("peer.port")?["value"]?.int64Value == 5432)
        #expect(tag("unicode")?["value"]?.stringValue == "é \"quoted\" \u{1F600} \n\t\u{01}")
        let logs = try #require(s["logs"]?.arrayValue)
        #expect(logs.first?["timestamp"]?.int64Value == 1_544_712_660_500_000)
        #expect(logs.first?["fields"]?[0] == .object([("key", .string("event")), ("type", .string("string")), ("value", .string("retry"))]))
        #expect(logs.first?["fields"]?[1]?["key"]?.stringValue == "attempt")
        // Processes deduplicated by (service, resource).
        #expect(spans[1]["processID"]?.stringValue == "p2")
        #expect(spans[2]["processID"]?.stringValue == "p1")
        let p1 = try #require(v["processes"]?["p1"])
        #expect(p1["serviceName"]?.stringValue == "my.service")
        #expect(p1["tags"]?[0]?["key"]?.stringValue == "host.name")
        #expect(v["processes"]?["p2"]?["tags"] == .array([]))
        #expect(v["processes"]?["p3"] == nil)
        // Internal spans have no span.kind tag; no status, no error tag.
        let t3 = try #require(spans[2]["tags"]?.arrayValue)
        #expect(!t3.contains { $0["key"]?.stringValue == "span.kind" || $0["key"]?.stringValue == "error" })
    }

    @Test func envelope() throws {
        let a = [Samples.simpleSpan(1)]
        let out = JaegerJSON.encodeEnvelope(traces: [a, a], limit: 20, offset: 0)
        let v = try JSONParser.parse(out)
        #expect(v["data"]?.arrayValue?.count == 2)
        #expect(v["total"]?.int64Value == 2)
        #expect(v["limit"]?.int64Value == 20)
        #expect(v["errors"] == .null)
        let e = try JSONParser.parse(JaegerJSON.encodeEnvelope(traces: [], errors: [(code: 404, msg: "trace not found", traceID: "abc"), (nil, "x", nil)]))
        #expect(text(e.jsonBytes) == #"{"data":[],"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found","traceID":"abc"},{"msg":"x"}]}"#)
    }

    @Test func controlCharactersStayValidJSON() throws {
        var s = Samples.simpleSpan(1)
        s.name = "\u{00}\u{7F}\u{1B}[31m\"\\"
        s.attributes = [Attribute("k\n", .string("\u{2028}\u{FFFF}")), Attribute("nan", .double(.nan))]
        let v = try JSONParser.parse(JaegerJSON.trace([s]))
        #expect(v["spans"]?[0]?["operationName"]?.stringValue == s.name)
        #expect(v["spans"]?[0]?["tags"]?[1]?["value"]?.stringValue == "nan")
    }
}
