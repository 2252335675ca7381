import Testing
import TraceModel

@testable import SidecarProxy

@Suite struct HopSpanBuilderTests {
    func hop(direction: ProxyDirection = .outbound, status: Int? = 200, flags: [String] = [], parent: SpanID? = SpanID(0x22)) -> HopRecord {
        let context = TraceContext(traceID: TraceID(high: 1, low: 2), spanID: SpanID(0x33) ?? SpanID.random(), parentSpanID: parent, sampled: true, traceState: "vendor=x")
        return HopRecord(
            direction: direction, context: context, sampled: true, startNanos: 1_000_000_000, durationNanos: 2_500_000,
            method: "GET", path: "/users/42?verbose=1", authority: "backend:8080", statusCode: status, responseFlags: flags,
            requestBytes: 10, responseBytes: 1024, requestID: "req-1", userAgent: "curl/8", downstreamAddress: "127.0.0.1:5555",
            sourceService: "frontend", destinationService: "backend", upstreamCluster: "outbound|8080||backend",
            upstreamAddress: "127.0.0.1:15006", customTags: [("team", "payments"), ("empty", "")])
    }

    let builder = HopSpanBuilder(configuration: TelemetryConfiguration(serviceName: "frontend"))

    @Test func outboundHopIsAClientSpanWithEnvoyAndOTelTags() throws {
        let span = builder.span(for: hop(), samplingPercent: 25)
        #expect(span.kind == .client)
        #expect(span.name == "GET /users/{id}")
        #expect(span.serviceName == "frontend")
        #expect(span.parentSpanID == SpanID(0x22))
        #expect(span.traceState == "vendor=x")
        #expect(span.attribute("guid:x-request-id") == .string("req-1"))
        #expect(span.attribute("http.url") == .string("http://backend:8080/users/42?verbose=1"))
        #expect(span.attribute("http.status_code") == .string("200"))
        #expect(span.attribute("http.response.status_code") == .int(200))
        #expect(span.attribute("response_flags") == .string("-"))
        #expect(span.attribute("upstream_cluster") == .string("outbound|8080||backend"))
        #expect(span.attribute("component") == .string("proxy"))
        #expect(span.attribute("sampling.rate") == .double(0.25))
        #expect(span.attribute("peer.service") == .string("backend"))
        #expect(span.attribute("team") == .string("payments"))
        #expect(span.attribute("empty") == nil, "Envoy skips empty custom tag values")
        #expect(span.remoteEndpoint == Endpoint(serviceName: "backend", ipv4: "127.0.0.1", port: 15006))
        #expect(span.status.code == .unset)
        #expect(!span.isError)
    }

    @Test func inboundHopIsAServerSpanNamingTheCaller() {
        let span = builder.span(for: hop(direction: .inbound), samplingPercent: 100)
        #expect(span.kind == .server)
        #expect(span.attribute("downstream_cluster") == .string("frontend"))
        #expect(span.remoteEndpoint?.serviceName == "frontend")
    }

    @Test func failuresCarryErrorStatusFlagsAndAnEvent() {
        var failed = hop(status: 503, flags: ["URX", "UF"])
        failed.failureReason = "connection refused"
        let span = builder.span(for: failed, samplingPercent: 100)
        #expect(span.isError)
        #expect(span.status.code == .error)
        #expect(span.attribute("response_flags") == .string("URX,UF"))
        #expect(span.attribute("error") == .string("true"))
        #expect(span.events.first?.name == "proxy failure")
        let noResponse = builder.span(for: hop(status: nil), samplingPercent: 100)
        #expect(noResponse.isError, "no response code is an error, as in Envoy")
        let clientError = builder.span(for: hop(status: 404), samplingPercent: 100)
        #expect(!clientError.isError, "4xx is not an error for the proxy span")
    }

    @Test func longPathsAreCutInTheURLTag() {
        var long = hop()
        long.path = "/" + String(repeating: "a", count: 1000)
        let span = builder.span(for: long, samplingPercent: 100)
        guard case .string(let url)? = span.attribute("http.url") else {
            Issue.record("no http.url")
            return
        }
        #expect(url == "http://backend:8080/" + String(repeating: "a", count: 255))
    }
}
