import Foundation
import Testing
import TraceModel
@testable import TraceWire

@Suite struct ZipkinProtoTests {
    @Test func roundTrip() throws {
        var a = Samples.simpleSpan(1)
        a.remoteEndpoint = Endpoint(serviceName: "db", ipv4: "10.0.0.2", ipv6: "2001:db8::ff00:42:8329", port: 3306)
        a.localEndpoint = Endpoint(ipv4: "192.168.99.1", port: 80)
        a.events = [SpanEvent(timeNanos: 1_700_000_000_000_003_000, name: "ws")]
        a.attributes = [Attribute("a", .string("1")), Attribute("error", .string("oops")), Attribute("z", .string("2"))]
        a.status = .error("oops")
        a.debug = true
        var b = Samples.simpleSpan(2)
        b.traceID = Samples.trace
        b.parentSpanID = SpanID(1)
        b.kind = .consumer
        let batch = try ZipkinProto.decode(ZipkinProto.encode([a, b]))
        #expect(batch.spans == [a, b])
    }

    @Test func sameAsJSON() throws {
        let json = try ZipkinJSON.decode(bytes(ZipkinJSONTests.specExample))
        #expect(try ZipkinProto.decode(ZipkinProto.encode(json.spans)).spans == json.spans)
    }

    @Test func ipv6Formatting() {
        #expect(IPAddress.ipv6String(IPAddress.ipv6Bytes("2001:0db8:0000:0000:0000:0000:0000:0001")!) == "2001:db8::1")
        #expect(IPAddress.ipv6String(IPAddress.ipv6Bytes("::")!) == "::")
        #expect(IPAddress.ipv6String(IPAddress.ipv6Bytes("::ffff:1.2.3.4")!) == "::ffff:102:304")
        #expect(IPAddress.ipv6Bytes("1::2::3") == nil)
        #expect(IPAddress.ipv6Bytes("12345::") == nil)
        #expect(IPAddress.ipv4Bytes("1.2.3.256") == nil)
        #expect(IPAddress.ipv4Bytes("1.2.3") == nil)
        #expect(IPAddress.ipv4Bytes("1.2.3.4") == [1, 2, 3, 4])
    }

    static func body(_ edit: (inout Zipkin_Proto3_Span) -> Void) throws -> [UInt8] {
        var list = Zipkin_Proto3_ListOfSpans()
        var bad = ZipkinProto.message(Samples.simpleSpan(2))
        edit(&bad)
        list.spans = [ZipkinProto.message(Samples.simpleSpan(1)), bad]
        return try list.serializedBytes()
    }

    @Test func badSpanRejectsBatch() throws {
        let cases: [((inout Zipkin_Proto3_Span) -> Void, String)] = [
            ({ $0.traceID = Data([1, 2, 3]) }, "spans[1].traceId: must be 8 or 16 bytes, got 3"),
            ({ $0.traceID = Data(count: 16) }, "spans[1].traceId: all-zero trace id is invalid"),
            ({ $0.id = Data(count: 8) }, "spans[1].id: all-zero span id is invalid"),
            ({ $0.id = Data() }, "spans[1].id: must be 8 bytes, got 0"),
            ({ $0.parentID = Data([1, 2]) }, "spans[1].parentId: must be 8 bytes, got 2"),
            ({ $0.timestamp = UInt64.max }, "spans[1].timestamp: out of range"),
        ]
        for (edit, message) in cases {
            #expect(throws: WireError(message)) { try ZipkinProto.decode(try Self.body(edit)) }
        }
        // 8-byte trace ids are fine; an unknown kind is unspecified.
        let ok = try ZipkinProto.decode(try Self.body { $0.traceID = Data([0, 0, 0, 0, 0, 0, 0, 9]); $0.kind = .UNRECOGNIZED(9) })
        #expect(ok.spans[1].traceID == TraceID(high: 0, low: 9))
        #expect(ok.spans[1].kind == .unspecified)
    }

    @Test func malformedEmptyAndTruncation() throws {
        #expect(try ZipkinProto.decode([]).spans.isEmpty)
        #expect(throws: WireError.self) { try ZipkinProto.decode(bytes("[{\"traceId\":1}]")) }
        var s = Samples.simpleSpan(1)
        s.attributes = [Attribute("big", .string(String(repeating: "a", count: 20_000)))]
        let batch = try ZipkinProto.decode(ZipkinProto.encode([s]))
        #expect(batch.truncatedValues == 1)
        #expect(batch.spans.first?.attribute("big") == .string(String(repeating: "a", count: 16_384)))
    }

    @Test func fuzz() {
        var g = SplitMix64(seed: 0x21_9B_0F)
        var rich = Samples.richSpan()
        rich.remoteEndpoint = Endpoint(serviceName: "x", ipv4: "1.2.3.4", port: 9)
        let valid = ZipkinProto.encode([rich, Samples.simpleSpan(2)])
        var decoded = 0
        for i in 0..<4000 {
            let input = i % 4 == 3 ? Fuzz.randomBytes(&g) : Fuzz.mutate(valid, &g)
            do {
                let batch = try ZipkinProto.decode(input)
                #expect(Fuzz.checkValid(batch), "iteration \(i)")
                decoded += 1
            } catch {
                #expect(!error.message.isEmpty)
            }
        }
        #expect(decoded > 50)
    }
}
