import Foundation
import MeshtraceTesting
import SwiftProtobuf
import Testing
import TraceModel
@testable import TraceWire

/// The hand-written protobuf writer, checked against SwiftProtobuf's generated code: what one
/// writes the other must read as the same message.
@Suite struct ProtoWriterTests {
    @Test func varintsTakeTheirCanonicalBytes() {
        let cases: [(UInt64, [UInt8])] = [
            (0, [0]), (1, [1]), (127, [0x7F]), (128, [0x80, 0x01]), (300, [0xAC, 0x02]),
            (16_383, [0xFF, 0x7F]), (16_384, [0x80, 0x80, 0x01]),
            (UInt64.max, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        ]
        for (value, expected) in cases {
            let w = ProtoWriter()
            w.varint(value)
            #expect(w.bytes == expected, "\(value)")
            #expect(ProtoWriter.varintSize(value) == expected.count, "\(value)")
        }
    }

    /// Nested content of every length class: the length byte left by `beginMessage` must grow
    /// (and the content move up) at 128 and 16384 bytes without losing a byte.
    @Test func nestedLengthsOfEverySizeReadBack() throws {
        for length in [0, 1, 127, 128, 129, 300, 16_383, 16_384, 70_000] {
            let value = String(repeating: "v", count: length)
            let w = ProtoWriter(capacity: 16)
            w.fixed64(field: 1, 0x0102_0304_0506_0708)
            let m = w.beginMessage(field: 2)
            w.append(value)
            w.endMessage(m)
            let decoded = try Zipkin_Proto3_Annotation(serializedBytes: w.bytes)
            #expect(decoded.timestamp == 0x0102_0304_0506_0708)
            #expect(decoded.value == value, "length \(length)")
        }
    }

    @Test func decimalsAndNegativeInt32s() throws {
        let w = ProtoWriter()
        let m = w.beginMessage(field: 2)
        for n: Int64 in [0, 7, -7, 10, 1_000_000, Int64.max, Int64.min + 1] { w.appendDecimal(n); w.append(",") }
        w.endMessage(m)
        #expect(try Zipkin_Proto3_Annotation(serializedBytes: w.bytes).value == "0,7,-7,10,1000000,9223372036854775807,-9223372036854775807,")
        let e = ProtoWriter()
        e.int32(field: 4, -1)
        #expect(try Zipkin_Proto3_Endpoint(serializedBytes: e.bytes).port == -1)
    }

    /// `ZipkinProto.write` (by hand) against `ZipkinProto.message` (generated) over random spans:
    /// both decode to the same span.
    @Test func handWrittenSpansDecodeAsTheGeneratedOnes() async throws {
        var g = SplitMix64(seed: 0xB0B)
        let kinds: [SpanKind] = [.client, .server, .producer, .consumer, .internal, .unspecified]
        func text(_ max: Int) -> String { Fuzz.text(&g, max: max) }
        for i in 0..<1_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            var s = Samples.simpleSpan(UInt64(i + 1))
            s.traceID = TraceID(high: g.next() % 2 == 0 ? 0 : g.next(), low: g.next() | 1)
            s.parentSpanID = g.next() % 2 == 0 ? nil : SpanID(g.next() | 1)
            s.kind = kinds[Int(g.next() % UInt64(kinds.count))]
            s.name = text(40)
            s.serviceName = g.next() % 4 == 0 ? "" : text(12)
            s.startTimeNanos = [0, 999, g.next() >> 2][Int(g.next() % 3)]
            s.durationNanos = [0, 1, g.next() >> 30][Int(g.next() % 3)]
            s.attributes = (0..<Int(g.next() % 6)).map { n in
                Attribute(n == 3 ? "dup" : "k\(g.next() % 4)", [.string(text(300)), .int(Int64(bitPattern: g.next())), .bool(true), .double(1.5)][Int(g.next() % 4)])
            }
            if g.next() % 3 == 0 { s.status = .error(g.next() % 2 == 0 ? nil : text(20)) }
            if g.next() % 3 == 0 { s.events = [SpanEvent(timeNanos: g.next() >> 4, name: text(20))] }
            s.remoteEndpoint = g.next() % 2 == 0 ? nil : Endpoint(
                serviceName: g.next() % 2 == 0 ? nil : text(10), ipv4: ["10.1.2.3", nil, "not-ip"][Int(g.next() % 3)],
                ipv6: [nil, "2001:db8::1"][Int(g.next() % 2)], port: [nil, 0, 8080, 70_000][Int(g.next() % 4)])
            s.debug = g.next() % 5 == 0
            s.shared = g.next() % 5 == 0
            let w = ProtoWriter()
            ZipkinProto.write(s, to: w)
            let list = ProtoWriter()
            w.withBytes { list.bytes(field: 1, $0) }
            let hand = try ZipkinProto.decodeWithGeneratedCode(list.bytes).spans
            let generated = try ZipkinProto.decodeWithGeneratedCode(ZipkinProto.encodeWithGeneratedCode([s])).spans
            try #require(hand == generated, "span \(i): \(s)")
        }
    }
}
