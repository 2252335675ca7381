import Testing

@testable import TraceModel

/// The header formats are written byte by byte (they are built for every proxied request); these
/// hold them to the plain string-built forms and to the parsers, over random contexts.
@Suite struct PropagationTests {
    static func randomContext(_ rng: inout SplitMix64) -> TraceContext {
        let traceID = TraceID(high: rng.next() % 3 == 0 ? 0 : rng.next(), low: rng.next() | 1)
        let sampledChoices: [Bool?] = [nil, true, false]
        return TraceContext(
            traceID: traceID, spanID: SpanID(rng.next() | 1) ?? SpanID.random(),
            parentSpanID: rng.next() % 2 == 0 ? nil : SpanID(rng.next() | 1),
            sampled: sampledChoices[Int(rng.next() % 3)], debug: rng.next() % 5 == 0,
            traceState: [nil, "", "vendor=1", "a=b,c=d"][Int(rng.next() % 4)])
    }

    /// 16 lower-case hex digits, with the standard library's formatting (not the product's `Hex`).
    static func hex16(_ v: UInt64) -> String {
        let digits = String(v, radix: 16, uppercase: false)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    // The formats as the specs write them: W3C Trace Context §3.2 (version-traceid-parentid-flags,
    // lower-case hex, flags 01 = sampled), B3 single (traceid-spanid-sampled-parentspanid, a
    // 64-bit trace id as 16 digits, `d` for debug, the parent only after a sampling decision).
    static func referenceTraceparent(_ c: TraceContext) -> String {
        "00-\(hex16(c.traceID.high))\(hex16(c.traceID.low))-\(hex16(c.spanID.value))-\(c.sampled == true || c.debug ? "01" : "00")"
    }

    static func referenceB3Single(_ c: TraceContext) -> String {
        var value = "\(c.traceID.high == 0 ? hex16(c.traceID.low) : hex16(c.traceID.high) + hex16(c.traceID.low))-\(hex16(c.spanID.value))"
        let decision = c.debug ? "d" : c.sampled.map { $0 ? "1" : "0" }
        if let decision { value += "-" + decision }
        if let parent = c.parentSpanID, decision != nil { value += "-" + hex16(parent.value) }
        return value
    }

    /// The specs' own examples, as literals.
    @Test func theSpecsExamplesFormatAndParse() throws {
        // W3C Trace Context, §3.2.2.1 example: version 00, trace-id, parent-id, sampled.
        let w3c = TraceContext(
            traceID: TraceID(high: 0x4bf9_2f35_77b3_4da6, low: 0xa3ce_929d_0e0e_4736), spanID: try #require(SpanID(0x00f0_67aa_0ba9_02b7)),
            sampled: true)
        #expect(W3CTraceContext.format(w3c) == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        var unsampled = w3c
        unsampled.sampled = false
        #expect(W3CTraceContext.format(unsampled) == "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
        let parsed = try #require(W3CTraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        #expect(parsed.traceID == w3c.traceID && parsed.spanID == w3c.spanID && parsed.sampled == true)
        // §3.2.2.3: an all-zero trace id or parent id is invalid, and so is upper-case hex.
        #expect(W3CTraceContext.parse("00-00000000000000000000000000000000-00f067aa0ba902b7-01") == nil)
        #expect(W3CTraceContext.parse("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01") == nil)
        #expect(W3CTraceContext.parse("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01") == nil)

        // B3 single header, from openzipkin/b3-propagation's README.
        let b3 = TraceContext(
            traceID: TraceID(high: 0x80f1_98ee_5634_3ba8, low: 0x64fe_8b2a_57d3_eff7), spanID: try #require(SpanID(0xe457_b5a2_e4d8_6bd1)),
            parentSpanID: SpanID(0x05e3_ac9a_4f6e_3b90), sampled: true)
        #expect(B3Propagation.formatSingle(b3) == "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
        var debug = b3
        debug.debug = true
        #expect(B3Propagation.formatSingle(debug) == "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90")
        var deferred = b3
        deferred.sampled = nil
        #expect(B3Propagation.formatSingle(deferred) == "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1", "no decision: no parent either")
        let short = TraceContext(traceID: TraceID(high: 0, low: 0x64fe_8b2a_57d3_eff7), spanID: try #require(SpanID(0xe457_b5a2_e4d8_6bd1)), sampled: false)
        #expect(B3Propagation.formatSingle(short) == "64fe8b2a57d3eff7-e457b5a2e4d86bd1-0", "a 64-bit trace id stays 16 digits")
        guard case .context(let read)? = B3Propagation.extractSingle("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90") else {
            Issue.record("the README's b3 example did not parse")
            return
        }
        #expect(read.traceID == b3.traceID && read.spanID == b3.spanID && read.parentSpanID == b3.parentSpanID && read.sampled == true)
        #expect(b3.traceID.hex32 == "80f198ee56343ba864fe8b2a57d3eff7")
        #expect(short.traceID.hex32 == "000000000000000064fe8b2a57d3eff7")
    }

    @Test func formatsMatchReferenceAndParseBack() async throws {
        var rng = SplitMix64(seed: 7)
        for _ in 0..<3_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let c = Self.randomContext(&rng)
            let traceparent = W3CTraceContext.format(c)
            #expect(traceparent == Self.referenceTraceparent(c))
            let parsed = try #require(W3CTraceContext.parse(traceparent))
            #expect(parsed.traceID == c.traceID && parsed.spanID == c.spanID)
            #expect(parsed.sampled == (c.sampled == true || c.debug))

            let single = B3Propagation.formatSingle(c)
            #expect(single == Self.referenceB3Single(c))
            guard case .context(let b3)? = B3Propagation.extractSingle(single) else {
                Issue.record("b3 \(single) did not parse")
                continue
            }
            #expect(b3.traceID == c.traceID && b3.spanID == c.spanID && b3.debug == c.debug)
            #expect(b3.parentSpanID == (c.sampled == nil && !c.debug ? nil : c.parentSpanID))

            #expect(c.traceID.hex32 == Self.hex16(c.traceID.high) + Self.hex16(c.traceID.low))
        }
    }

    /// The append-only path a fresh header list takes is `inject` into an empty carrier, header
    /// for header, whatever the format list (repeats included).
    @Test func appendedHeadersEqualInjectIntoEmptyCarrier() async {
        var rng = SplitMix64(seed: 11)
        let all: [PropagationFormat] = [.w3c, .b3multi, .b3single]
        for _ in 0..<3_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let c = Self.randomContext(&rng)
            let formats = (0..<Int(rng.next() % 5)).map { _ in all[Int(rng.next() % 3)] }
            var injected = HeaderList()
            TracePropagation.inject(c, formats: formats, into: &injected)
            var appended: [(String, String)] = []
            TracePropagation.forEachHeader(c, formats: formats) { appended.append(($0, $1)) }
            let lower = { (fields: [(String, String)]) in fields.map { "\($0.0.lowercased()): \($0.1)" }.sorted() }
            #expect(lower(appended) == lower(injected.fields.map { ($0.name, $0.value) }), "\(formats)")
            #expect(Set(appended.map { $0.0.lowercased() }).count == appended.count, "a header written twice for \(formats)")
        }
    }

    /// `inject` over a carrier full of stale trace headers leaves exactly the fresh ones.
    @Test func injectReplacesStaleHeaders() {
        var rng = SplitMix64(seed: 13)
        let c = Self.randomContext(&rng)
        var headers = HeaderList(TracePropagation.ownedHeaders.map { ($0.uppercased(), "stale") } + [("x-other", "kept")])
        TracePropagation.inject(c, formats: [.w3c, .b3multi, .b3single], into: &headers)
        #expect(!headers.fields.contains { $0.value == "stale" })
        #expect(headers.first("x-other") == "kept")
        #expect(headers.first("traceparent") == W3CTraceContext.format(c))
    }

    /// Random bytes, and valid headers with one byte changed, never trap and never yield a
    /// context with a zero id.
    @Test func parsersSurviveRandomInput() async {
        var rng = SplitMix64(seed: 17)
        let alphabet = Array("0123456789abcdefABCDEF-xz ,=;\t\u{0}é😀")
        for i in 0..<20_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let value: String
            if i % 2 == 0 {
                value = String((0..<Int(rng.next() % 80)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            } else {
                let c = Self.randomContext(&rng)
                var chars = Array(i % 4 == 1 ? W3CTraceContext.format(c) : B3Propagation.formatSingle(c))
                chars[Int(rng.next() % UInt64(chars.count))] = alphabet[Int(rng.next() % UInt64(alphabet.count))]
                value = String(chars)
            }
            if let c = W3CTraceContext.parse(value) { #expect(c.traceID.isValid && c.spanID.value != 0, "\(value)") }
            if case .context(let c)? = B3Propagation.extractSingle(value) { #expect(c.traceID.isValid && c.spanID.value != 0, "\(value)") }
            let incoming = TracePropagation.extract(HeaderList([("traceparent", value), ("b3", value), ("x-b3-traceid", value), ("x-b3-spanid", value)]))
            if let c = incoming.context { #expect(c.traceID.isValid, "\(value)") }
        }
    }

    @Test func hexEncodesLowerCaseAndDecodesBack() {
        #expect(Hex.encode([0x00, 0x0f, 0xab, 0xff]) == "000fabff")
        var rng = SplitMix64(seed: 19)
        for _ in 0..<200 {
            let bytes = (0..<Int(rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            #expect(Hex.decode(Hex.encode(bytes)) == bytes)
        }
    }
}
