import NIOHTTP1
import Testing
import TraceModel

@testable import SidecarProxy

/// `sw8` in the sidecar's hop: read and written only when it is among `--propagation`, passed
/// through untouched otherwise, and a disagreement with W3C noted for the span.
@Suite struct Sw8HopTests {
    static let agentHeader = "1-" + Base64.encode("a1b2c3.45.16790000000001") + "-" + Base64.encode("a1b2c3.45.16790000000002") + "-3-"
        + Base64.encode("frontend") + "-" + Base64.encode("f1") + "-" + Base64.encode("/cart") + "-" + Base64.encode("backend:80")

    func snapshot(_ formats: [PropagationFormat]) -> ConfigurationBox.Snapshot {
        var c = SidecarConfiguration()
        c.serviceName = "backend"
        c.propagation = formats
        return ConfigurationBox(c).snapshot
    }

    func hop(_ headers: [(String, String)], _ formats: [PropagationFormat]) -> (HopTrace, [(String, String)]) {
        var rng = FastRandom(seed: 3)
        let trace = TraceDecision.decide(headers: HTTPHeaders(headers + [("host", "backend:80")]), path: "/cart?id=1", snapshot: snapshot(formats), random: &rng)
        var added = AddedHeaders()
        TraceDecision.inject(trace, formats: formats, into: &added)
        return (trace, added.fields)
    }

    @Test func readsAndWritesSw8WhenConfigured() throws {
        let (trace, added) = hop([("sw8", Self.agentHeader)], [.w3c, .sw8])
        #expect(trace.extracted == [.sw8] && trace.hadContext)
        #expect(trace.context.traceID.hex32 == "c92da5b6d17ae7a7f808d0c3f09229dc")
        #expect(trace.context.parentSpanID == SkyWalkingIDs.spanID(segment: "a1b2c3.45.16790000000002", index: 3))
        let written = try #require(added.first { $0.0 == "sw8" }?.1)
        let fields = try #require(Sw8Propagation.parse(written))
        #expect(fields.traceID == "a1b2c3.45.16790000000001" && fields.segmentID == trace.context.spanID.hex && fields.spanIndex == 0)
        #expect(fields.service == "backend" && fields.serviceInstance == "backend-sidecar")
        #expect(fields.endpoint == "/cart" && fields.targetAddress == "backend:80")
        // W3C carries the mapped id, so a W3C-only app downstream stays in the same trace.
        #expect(added.contains { $0.0 == "traceparent" && $0.1.contains("c92da5b6d17ae7a7f808d0c3f09229dc") })
        #expect(added.filter { $0.0.lowercased() == "sw8" }.count == 1)
    }

    @Test func passesSw8ThroughWhenNotConfigured() {
        let (trace, added) = hop([("sw8", Self.agentHeader)], [.w3c, .b3multi])
        #expect(trace.extracted.isEmpty && !trace.hadContext)
        #expect(added.filter { $0.0.lowercased() == "sw8" }.map(\.1) == [Self.agentHeader])
    }

    /// SkyWalking's correlation and extension headers are the application's: forwarded as they
    /// came, whatever the formats; `sw8` itself is the hop's to write.
    @Test func correlationAndExtensionHeadersPassThrough() {
        let headers = [("sw8", Self.agentHeader), ("sw8-correlation", "dGVhbQ==:c2hvcA=="), ("SW8-X", "0- "), ("accept", "*/*")]
        let scan = RequestHeadScan(HTTPHeaders(headers))
        #expect(scan.keptFields.map { "\($0.0)=\($0.1)" } == ["sw8-correlation=dGVhbQ==:c2hvcA==", "SW8-X=0-", "accept=*/*"])
        #expect(scan.trace.first("sw8") == Self.agentHeader)
    }

    @Test func w3cWinsOverADisagreeingSw8() {
        let (trace, _) = hop([("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), ("sw8", Self.agentHeader)], [.w3c, .sw8])
        #expect(trace.context.traceID.hex32 == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(trace.disagreeing == [.sw8] && trace.extracted == [.w3c, .sw8])
        #expect(ProxyHandler.formatList(trace.disagreeing) == "sw8")
    }
}
