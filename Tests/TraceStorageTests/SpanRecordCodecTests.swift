import Testing
import TraceModel

@testable import TraceStorage

@Suite("SpanRecordCodec")
struct SpanRecordCodecTests {
    @Test func roundTripsEveryField() throws {
        let rich = richSpan()
        #expect(try SpanRecordCodec.decode(SpanRecordCodec.encode(rich)) == rich)
        let minimal = Span(traceID: tid(1), spanID: sid(1), name: "", startTimeNanos: 0, durationNanos: 0, serviceName: "")
        #expect(try SpanRecordCodec.decode(SpanRecordCodec.encode(minimal)) == minimal)
        var extremes = minimal
        extremes.startTimeNanos = .max
        extremes.durationNanos = .max
        extremes.localEndpoint = Endpoint()
        extremes.remoteEndpoint = Endpoint(port: -1)
        extremes.scope = InstrumentationScope(name: "s")
        extremes.status = SpanStatus(code: .ok, message: "")
        #expect(try SpanRecordCodec.decode(SpanRecordCodec.encode(extremes)) == extremes)
        // NaN is not equal to itself: compare the bit pattern.
        var nan = minimal
        nan.attributes = [Attribute("nan", .double(.nan))]
        guard case .double(let d) = try SpanRecordCodec.decode(SpanRecordCodec.encode(nan)).attributes[0].value else {
            Issue.record("expected a double")
            return
        }
        #expect(d.bitPattern == Double.nan.bitPattern)
    }

    @Test func rejectsMalformedRecords() {
        let valid = SpanRecordCodec.encode(richSpan())
        #expect(throws: SpanRecordCodec.DecodingError.self) { try SpanRecordCodec.decode([]) }
        #expect(throws: SpanRecordCodec.DecodingError.self) { try SpanRecordCodec.decode([99] + valid.dropFirst()) }  // version
        #expect(throws: SpanRecordCodec.DecodingError.self) { try SpanRecordCodec.decode(valid + [0]) }  // trailing
        #expect(throws: SpanRecordCodec.DecodingError.self) { try SpanRecordCodec.decode(Array(valid.dropLast())) }  // truncated
        var badKind = valid
        badKind[2] = 9
        #expect(throws: SpanRecordCodec.DecodingError.self) { try SpanRecordCodec.decode(badKind) }
        var zeroSpanID = valid
        for i in 20..<28 { zeroSpanID[i] = 0 }
        #expect(throws: SpanRecordCodec.DecodingError.self) { try SpanRecordCodec.decode(zeroSpanID) }
        // Deeply nested arrays: rejected, not a stack overflow.
        var deep: AttributeValue = .int(1)
        for _ in 0..<100 { deep = .array([deep]) }
        let nested = SpanRecordCodec.encode(
            Span(traceID: tid(1), spanID: sid(1), name: "n", startTimeNanos: 0, durationNanos: 0, serviceName: "s", attributes: [Attribute("k", deep)]))
        #expect(throws: SpanRecordCodec.DecodingError.self) { try SpanRecordCodec.decode(nested) }
    }

    /// Random bytes and mutations of valid records: decoding returns or throws, never traps;
    /// whatever decodes is a record the codec would write itself (re-encoding is a fixed point);
    /// and no strict prefix of a valid record decodes (a cut-off write is always caught).
    @Test(arguments: [UInt64(1), 0xC0FFEE, 0xDEAD_BEEF])
    func fuzz(seed: UInt64) async {
        var rng = SplitMix64(seed: seed)
        let seeds = [
            SpanRecordCodec.encode(richSpan()),
            SpanRecordCodec.encode(StoreConformanceTests.searchFixture()[0]),
            SpanRecordCodec.encode(span(trace: tid(5), id: 6, parent: 7, remote: "x")),
        ]
        var decoded = 0
        var rejected = 0
        var truncationsRejected = 0
        var truncations = 0
        func attempt(_ bytes: [UInt8], truncated: Bool = false) {
            do {
                let span = try SpanRecordCodec.decode(bytes)
                // Compared as bytes: a NaN attribute is not equal to itself as a value.
                let record = SpanRecordCodec.encode(span)
                #expect(SpanRecordCodec.encode(try SpanRecordCodec.decode(record)) == record, "re-encoding \(bytes) is not stable")
                decoded += 1
            } catch {
                rejected += 1
                if truncated { truncationsRejected += 1 }
            }
            if truncated { truncations += 1 }
        }
        for _ in 0..<3_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let n = Int.random(in: 0..<200, using: &rng)
            var bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !bytes.isEmpty && Bool.random(using: &rng) { bytes[0] = SpanRecordCodec.version }
            attempt(bytes)
        }
        for _ in 0..<6_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            var bytes = seeds[Int.random(in: 0..<seeds.count, using: &rng)]
            switch Int.random(in: 0..<5, using: &rng) {
            case 0:  // flip bits
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                }
            case 1:  // overwrite with random / extreme bytes
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    let i = Int.random(in: 0..<bytes.count, using: &rng)
                    bytes[i] = [0x00, 0xFF, 0x80, 0x7F, UInt8.random(in: 0...255, using: &rng)].randomElement(using: &rng)!
                }
            case 2:  // truncate: never a valid record
                attempt(Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &rng))), truncated: true)
                continue
            case 3:  // insert a run of 0xFF (huge varints / lengths)
                let i = Int.random(in: 0...bytes.count, using: &rng)
                bytes.insert(contentsOf: Array(repeating: 0xFF, count: Int.random(in: 1...12, using: &rng)), at: i)
            default:  // delete a slice
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                let j = min(bytes.count, i + Int.random(in: 1...8, using: &rng))
                bytes.removeSubrange(i..<j)
            }
            attempt(bytes)
        }
        #expect(truncations > 500 && truncationsRejected == truncations, "\(truncations - truncationsRejected) cut-off records decoded")
        // Both outcomes are common, or the mutations exercise only one path.
        #expect(decoded > 100 && rejected > 1_000, "decoded \(decoded), rejected \(rejected)")
    }
}
