import Testing

@testable import TraceModel

/// SkyWalking's `sw8`: parsing what agents write, writing what they accept, the id mapping the
/// sidecar and the collector share, and W3C-first precedence with the disagreement noted.
@Suite struct Sw8PropagationTests {
    /// A header as the Python agent 1.2.0 writes it (uuid1 ids without dashes, Base64 fields).
    static let python = "1-" + Base64.encode("6a1e3c6c0c1e11ef9f5e0242ac120002") + "-" + Base64.encode("6a1e3f8c0c1e11ef9f5e0242ac120002")
        + "-1-" + Base64.encode("frontend") + "-" + Base64.encode("abc@10.0.0.1") + "-" + Base64.encode("/checkout") + "-"
        + Base64.encode("backend:8080")

    @Test func parsesAnAgentsHeader() throws {
        let fields = try #require(Sw8Propagation.parse(Self.python))
        #expect(fields.sampled && fields.spanIndex == 1)
        #expect(fields.traceID == "6a1e3c6c0c1e11ef9f5e0242ac120002" && fields.segmentID == "6a1e3f8c0c1e11ef9f5e0242ac120002")
        #expect(fields.service == "frontend" && fields.serviceInstance == "abc@10.0.0.1")
        #expect(fields.endpoint == "/checkout" && fields.targetAddress == "backend:8080")
        #expect(Sw8Propagation.format(fields) == Self.python)
    }

    @Test func malformedHeadersAreIgnored() {
        let good = Self.python.split(separator: "-").map(String.init)
        func with(_ index: Int, _ value: String) -> String {
            var parts = good
            parts[index] = value
            return parts.joined(separator: "-")
        }
        for bad in [
            "", "1", good.dropLast().joined(separator: "-"), Self.python + "-x",  // field count
            with(0, "2"), with(0, ""),  // sample flag
            with(1, ""), with(1, "!!!"), with(2, ""),  // ids: required, Base64
            with(3, "-1"), with(3, "x"), with(3, "99999999999"),  // span index
            with(4, "a*b"),  // names must be Base64
        ] {
            #expect(Sw8Propagation.parse(bad) == nil, "\(bad)")
            #expect(TracePropagation.extract(HeaderList([("sw8", bad)]), readSW8: true).context == nil)
        }
    }

    /// The mapping is a wire contract (README): pinned values computed independently (Python's
    /// FNV-1a 64 + SplitMix64), so a change to the hash cannot slip through.
    @Test func idMappingIsStableAndKeepsOurOwnIds() {
        #expect(SkyWalkingIDs.traceID("a1b2c3.45.16790000000001").hex32 == "c92da5b6d17ae7a7f808d0c3f09229dc")
        #expect(SkyWalkingIDs.spanID(segment: "a1b2c3.45.16790000000002", index: 3).hex == "9a36d7b52b9156bf")
        // Ours, as the sidecar writes them, map back to themselves.
        #expect(SkyWalkingIDs.traceID("4bf92f3577b34da6a3ce929d0e0e4736").hex32 == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(SkyWalkingIDs.spanID(segment: "00f067aa0ba902b7", index: 0).hex == "00f067aa0ba902b7")
        // ...but only in exactly that form.
        #expect(SkyWalkingIDs.nativeTraceID("4BF92F3577B34DA6A3CE929D0E0E4736") == nil)
        #expect(SkyWalkingIDs.spanID(segment: "00f067aa0ba902b7", index: 1).hex != "00f067aa0ba902b7")
        #expect(SkyWalkingIDs.spanID(segment: "s", index: 1) != SkyWalkingIDs.spanID(segment: "s", index: 2))
        #expect(SkyWalkingIDs.traceID("00000000000000000000000000000000").isValid)
    }

    @Test func aHashedTraceIdTravelsUnchanged() throws {
        let header = "0-" + Base64.encode("a1b2c3.45.16790000000001") + "-" + Base64.encode("a1b2c3.45.16790000000002") + "-3-"
            + Base64.encode("svc") + "-" + Base64.encode("inst") + "-" + Base64.encode("/x") + "-" + Base64.encode("h:1")
        let context = try #require(Sw8Propagation.extract(header))
        #expect(context.traceID.hex32 == "c92da5b6d17ae7a7f808d0c3f09229dc" && context.spanID.hex == "9a36d7b52b9156bf")
        #expect(context.sampled == false && context.sw8TraceID == "a1b2c3.45.16790000000001")
        // The next hop writes its own segment and index 0, and the original trace id.
        let child = context.child(spanID: SpanID(0x1234)!, sampled: true)
        let written = Sw8Propagation.format(child, origin: .init(service: "gw", instance: "gw-sidecar", endpoint: "", targetAddress: ""))
        let fields = try #require(Sw8Propagation.parse(written))
        #expect(fields.traceID == "a1b2c3.45.16790000000001" && fields.segmentID == "0000000000001234" && fields.spanIndex == 0)
        #expect(fields.service == "gw" && fields.serviceInstance == "gw-sidecar" && fields.sampled)
        // Never an empty field: SkyWalking's agents drop such a header.
        #expect(fields.endpoint == "/" && fields.targetAddress == "-")
        #expect(try #require(Sw8Propagation.extract(written)).spanID == SpanID(0x1234))
    }

    @Test func sw8IsReadOnlyWhenAsked() {
        let headers = HeaderList([("sw8", Self.python)])
        #expect(TracePropagation.extract(headers).context == nil)
        let incoming = TracePropagation.extract(headers, readSW8: true)
        #expect(incoming.formats == [.sw8] && incoming.sampled == true && incoming.disagreeing.isEmpty)
        #expect(incoming.context?.traceID.hex32 == "6a1e3c6c0c1e11ef9f5e0242ac120002")
    }

    @Test func w3cWinsAndTheDisagreementIsNoted() throws {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        // Another parent in the same trace: the app's agent wrote its own exit span into sw8.
        let sameTrace = "1-" + Base64.encode("4bf92f3577b34da6a3ce929d0e0e4736") + "-" + Base64.encode("seg") + "-1-"
            + Base64.encode("a") + "-" + Base64.encode("b") + "-" + Base64.encode("/c") + "-" + Base64.encode("d:1")
        let both = TracePropagation.extract(HeaderList([("traceparent", traceparent), ("sw8", sameTrace)]), readSW8: true)
        #expect(both.context?.spanID.hex == "00f067aa0ba902b7")
        #expect(both.formats == [.w3c, .sw8] && both.disagreeing == [.sw8])
        // The same position both ways (the sidecar's own injection): no disagreement.
        let own = TraceContext(traceID: TraceID(hex: "4bf92f3577b34da6a3ce929d0e0e4736")!, spanID: SpanID(hex: "00f067aa0ba902b7")!, sampled: true)
        var headers = HeaderList()
        TracePropagation.inject(own, formats: [.w3c, .b3multi, .sw8], sw8: .init(service: "s", instance: "i", endpoint: "/", targetAddress: "h"), into: &headers)
        let agreed = TracePropagation.extract(headers, readSW8: true)
        #expect(agreed.formats == [.w3c, .b3multi, .sw8] && agreed.disagreeing.isEmpty)
        #expect(agreed.context?.traceID == own.traceID && agreed.context?.spanID == own.spanID)
        // Without an origin, inject writes no sw8 (it could not name the caller).
        var bare = HeaderList()
        TracePropagation.inject(own, formats: [.sw8], into: &bare)
        #expect(bare.first("sw8") == nil)
        // B3 naming another trace than W3C is noted too.
        let b3 = TracePropagation.extract(HeaderList([("traceparent", traceparent), ("b3", "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1")]))
        #expect(b3.disagreeing == [.b3single])
    }

    @Test func sw8AfterB3InPrecedence() {
        let b3 = "463ac35c9f6413ad48485a3953bb6124-a2fb4a1d1a96d312-1"
        let incoming = TracePropagation.extract(HeaderList([("b3", b3), ("sw8", Self.python)]), readSW8: true)
        #expect(incoming.context?.traceID.hex32 == "463ac35c9f6413ad48485a3953bb6124" && incoming.disagreeing == [.sw8])
    }

    @Test func parsesTheFormatName() {
        #expect(PropagationFormat.parseList("w3c, sw8") == [.w3c, .sw8])
    }
}
