import Testing
import TraceModel
import TraceExport
import TraceWire

@testable import SidecarProxy

/// The sidecar writes Zipkin JSON straight from a `HopRecord`; these hold that writer to the
/// bytes the span model would have produced, over randomized hops.
@Suite struct HopSpanBuilderZipkinTests {
    static let alphabet = Array("aZ09-_/.:?=&% \"\\\t\u{1}é😀")

    func randomString(_ rng: inout SplitMix64, maxLength: Int = 24) -> String {
        String((0..<Int(rng.next() % UInt64(maxLength + 1))).map { _ in Self.alphabet[Int(rng.next() % UInt64(Self.alphabet.count))] })
    }

    func randomHop(_ rng: inout SplitMix64) -> HopRecord {
        func maybe<T>(_ value: T) -> T? { rng.next() % 3 == 0 ? nil : value }
        let directions: [ProxyDirection] = [.inbound, .outbound]
        let context = TraceContext(
            traceID: TraceID(high: rng.next() % 2 == 0 ? 0 : rng.next(), low: rng.next() | 1), spanID: SpanID(rng.next() | 1) ?? SpanID.random(),
            parentSpanID: maybe(SpanID(rng.next() | 1) ?? SpanID.random()), sampled: true, debug: rng.next() % 5 == 0,
            traceState: maybe("vendor=\(rng.next() % 100)"))
        var hop = HopRecord(
            direction: directions[Int(rng.next() % 2)], context: context, sampled: true,
            startNanos: [0, 999, 1_000, rng.next() >> 8][Int(rng.next() % 4)], durationNanos: [0, 1, 1_500, rng.next() >> 20][Int(rng.next() % 4)],
            method: ["GET", "POST", "DELETE"][Int(rng.next() % 3)], path: "/" + randomString(&rng, maxLength: 300),
            authority: randomString(&rng), statusCode: maybe([200, 404, 500, 503][Int(rng.next() % 4)]),
            responseFlags: [[], ["UF"], ["URX", "UF"]][Int(rng.next() % 3)], requestBytes: Int(rng.next() % 100_000),
            responseBytes: Int(rng.next() % 100_000), requestID: randomString(&rng), userAgent: maybe(randomString(&rng)),
            downstreamAddress: maybe("127.0.0.1:\(rng.next() % 65536)"), sourceService: maybe(randomString(&rng)),
            destinationService: randomString(&rng), upstreamCluster: maybe("outbound|80||" + randomString(&rng)),
            upstreamAddress: maybe(["10.0.0.1:8080", "[::1]:9", "nocolon", "backend.svc:80", "[2001:db8::7]:443", "300.1.1.1:1"][Int(rng.next() % 6)]),
            retries: Int(rng.next() % 3),
            failureReason: maybe(randomString(&rng)), customTags: [("team", randomString(&rng)), ("empty", "")],
            parentInferred: rng.next() % 4 == 0)
        hop.propagationExtracted = maybe("w3c,b3multi")
        hop.propagationInjected = maybe("w3c")
        hop.upstreamSampled = maybe(rng.next() % 2 == 0)
        return hop
    }

    @Test func directZipkinBytesEqualTheSpanModelsEncoding() async throws {
        var rng = SplitMix64(seed: 0x5eed_2026)
        let builders = [
            HopSpanBuilder(configuration: TelemetryConfiguration(serviceName: "frontend")),
            HopSpanBuilder(configuration: TelemetryConfiguration(serviceName: "", maxPathTagLength: 8)),
        ]
        for i in 0..<2_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let hop = randomHop(&rng)
            let builder = builders[i % 2]
            let rate = [100, 25, 0.5][i % 3]
            var direct = JSONWriter()
            builder.writeZipkin(hop, samplingPercent: rate, to: &direct)
            var viaModel = JSONWriter()
            ZipkinJSON.write(builder.span(for: hop, samplingPercent: rate), to: &viaModel)
            try #require(
                direct.bytes == viaModel.bytes,
                "hop \(i):\n\(String(decoding: direct.bytes, as: UTF8.self))\n!=\n\(String(decoding: viaModel.bytes, as: UTF8.self))")
        }
    }

    @Test func directZipkinOutputIsReadBackByTheCollectorsDecoder() throws {
        var rng = SplitMix64(seed: 7)
        let builder = HopSpanBuilder(configuration: TelemetryConfiguration(serviceName: "backend"))
        let hops = (0..<50).map { _ in randomHop(&rng) }
        var w = JSONWriter()
        w.beginArray()
        for hop in hops { builder.writeZipkin(hop, samplingPercent: 100, to: &w) }
        w.endArray()
        let decoded = try ZipkinJSON.decode(w.bytes)
        #expect(decoded.rejected.isEmpty)
        #expect(decoded.spans.map(\.spanID) == hops.map(\.context.spanID))
        #expect(decoded.spans.map(\.kind) == hops.map { $0.direction == .inbound ? .server : .client })
    }

    /// The proto3 writer against the JSON one: the collector must read the same span from
    /// either, over randomized hops (tags compared as a set: proto3 maps have no order).
    @Test func directZipkinProtoDecodesAsTheDirectJSON() async throws {
        var rng = SplitMix64(seed: 0x9707)
        let builders = [
            HopSpanBuilder(configuration: TelemetryConfiguration(serviceName: "frontend")),
            HopSpanBuilder(configuration: TelemetryConfiguration(serviceName: "", maxPathTagLength: 8)),
        ]
        let proto = ProtoWriter()
        for i in 0..<2_000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let hop = randomHop(&rng)
            let builder = builders[i % 2]
            let rate = [100, 25, 0.5][i % 3]
            var json = JSONWriter()
            json.beginArray()
            builder.writeZipkin(hop, samplingPercent: rate, to: &json)
            json.endArray()
            proto.removeAll()
            builder.writeZipkinProto(hop, samplingPercent: rate, to: proto)
            var batch = EncodedSpanBatch(format: .zipkinProto)
            proto.withBytes { batch.append(entry: $0) }
            batch.close()
            var fromJSON = try #require(try ZipkinJSON.decode(json.bytes).spans.first)
            var fromProto = try #require(try batch.decode().first)
            fromJSON.attributes.sort { $0.key < $1.key }
            fromProto.attributes.sort { $0.key < $1.key }
            try #require(fromProto == fromJSON, "hop \(i):\n\(fromProto)\n!=\n\(fromJSON)")
        }
    }

    @Test func peerAddressesLandInTheRightEndpointField() {
        let builder = HopSpanBuilder(configuration: TelemetryConfiguration(serviceName: "frontend"))
        var rng = SplitMix64(seed: 1)
        var hop = randomHop(&rng)
        hop.direction = .outbound
        for (address, v4, v6) in [("10.0.0.1:8080", "10.0.0.1", nil), ("[::1]:9", nil, "::1"), ("backend.svc:80", nil, nil), ("300.1.1.1:1", nil, nil)] as [(String, String?, String?)] {
            hop.upstreamAddress = address
            let remote = builder.span(for: hop, samplingPercent: 100).remoteEndpoint
            #expect(remote?.ipv4 == v4 && remote?.ipv6 == v6, "\(address): \(String(describing: remote))")
        }
    }
}
