import Testing

@testable import Collector

@Suite struct GoDurationTests {
    @Test(arguments: [
        ("1.5s", UInt64(1_500_000_000)), ("250ms", 250_000_000), ("500us", 500_000), ("500µs", 500_000),
        ("1h30m", 5_400_000_000_000), ("0", 0), ("10ns", 10), ("2d", 172_800_000_000_000),
    ])
    func parsesValidDurations(text: String, nanos: UInt64) {
        #expect(GoDuration.parseNanos(text) == nanos)
    }

    @Test(arguments: ["", "fast", "10", "-1s", "1.2.3s", "s", "1x", "1e400h", "ms10"])
    func rejectsMalformedDurations(text: String) {
        #expect(GoDuration.parseNanos(text) == nil)
    }
}

@Suite struct AnnotationQueryTests {
    @Test func splitsTagsAndBareWords() {
        let parsed = ZipkinQueryAPI.parseAnnotationQuery("http.method=GET and error and http.path=/a=b")
        #expect(parsed.tags == ["http.method": "GET", "http.path": "/a=b"])
        #expect(parsed.terms == ["error"])
    }

    @Test func emptyQueryHasNoTerms() {
        let parsed = ZipkinQueryAPI.parseAnnotationQuery("  ")
        #expect(parsed.tags.isEmpty && parsed.terms.isEmpty)
    }
}

@Suite struct TraceIDParameterTests {
    @Test func jaegerPadsShortIDs() throws {
        let id = try JaegerQueryAPI.parseTraceID("abc")
        #expect(id?.hex == "0000000000000abc")
        let long = try JaegerQueryAPI.parseTraceID("1" + String(repeating: "0", count: 20))
        #expect(long?.high == 0x1_0000 && long?.low == 0)
    }

    @Test(arguments: ["", "xyz", String(repeating: "a", count: 33)])
    func rejectsBadIDs(raw: String) {
        #expect(throws: HTTPFailure.self) { try JaegerQueryAPI.parseTraceID(raw) }
        #expect(throws: HTTPFailure.self) { try ZipkinQueryAPI.parseTraceID(raw) }
    }

    /// Jaeger parses an all-zero id (and finds nothing); Zipkin refuses it.
    @Test func allZeroIDs() throws {
        let zeros = String(repeating: "0", count: 32)
        #expect(try JaegerQueryAPI.parseTraceID(zeros) == nil)
        #expect(throws: HTTPFailure.self) { try ZipkinQueryAPI.parseTraceID(zeros) }
    }
}

@Suite struct GoogleRPCStatusTests {
    @Test func encodesCodeAndMessage() {
        let bytes = GoogleRPCStatus.proto(code: 3, message: "bad")
        #expect(bytes == [0x08, 0x03, 0x12, 0x03, 0x62, 0x61, 0x64])
        #expect(GoogleRPCStatus.json(code: 3, message: "a\"b") == "{\"code\":3,\"message\":\"a\\\"b\"}")
    }
}

@Suite struct QueryStringTests {
    @Test func decodesFormEncoding() {
        let pairs = QueryParameters.parse("operation=GET+%2Fapi&tags=%7B%22a%22%3A%221%2B1%22%7D&empty=&flag&bad=%zz")
        #expect(pairs.map(\.name) == ["operation", "tags", "empty", "flag", "bad"])
        #expect(pairs[0].value == "GET /api")
        #expect(pairs[1].value == "{\"a\":\"1+1\"}")
        #expect(pairs[2].value == "" && pairs[3].value == "")
        #expect(pairs[4].value == "%zz")
    }
}
