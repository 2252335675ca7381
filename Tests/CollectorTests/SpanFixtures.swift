import Testing
import TraceModel

@testable import Collector

/// Spans for the query-view tests: one builder and a small mesh with a failing service.
let t0: UInt64 = 1_700_000_000_000_000_000
let ms: UInt64 = 1_000_000

func sp(
    _ trace: UInt64, _ id: UInt64, parent: UInt64? = nil, kind: SpanKind, service: String, start: UInt64 = t0,
    durationMs: UInt64 = 10, status: Int? = nil, rate: Double? = nil, peer: String? = nil,
    gateway: Bool = false, error: Bool = false, shared: Bool = false, name: String = "GET /"
) -> Span {
    var attributes: [Attribute] = [Attribute("http.method", .string("GET"))]
    if let status { attributes.append(Attribute("http.status_code", .string(String(status)))) }
    if let rate { attributes.append(Attribute("sampling.rate", .double(rate))) }
    if let peer { attributes.append(Attribute("peer.service", .string(peer))) }
    return Span(
        traceID: TraceID(high: 0, low: trace), spanID: SpanID(id)!, parentSpanID: parent.map { SpanID($0)! }, kind: kind,
        name: name, startTimeNanos: start, durationNanos: durationMs * ms, serviceName: service,
        resource: gateway ? [Attribute("meshtrace.proxy", .string("gateway"))] : [],
        attributes: attributes, status: error ? .error("boom") : .unset, shared: shared)
}

/// A mesh: gateway -> frontend -> {orders, payments}; payments fails 1 in 4; frontend also calls
/// an external API nobody reports for.
func mesh(requests: Int = 20, rate: Double? = nil) -> [Span] {
    var spans: [Span] = []
    for i in 0..<requests {
        let t = UInt64(i + 1)
        let start = t0 + UInt64(i) * 100 * ms
        let failing = i % 4 == 0
        spans += [
            sp(t, 1, kind: .client, service: "ingress", start: start, durationMs: 50, status: failing ? 500 : 200, rate: rate, peer: "frontend", gateway: true),
            sp(t, 2, parent: 1, kind: .server, service: "frontend", start: start + ms, durationMs: 48, status: failing ? 500 : 200, rate: rate),
            sp(t, 3, parent: 2, kind: .client, service: "frontend", start: start + 2 * ms, durationMs: 10 + UInt64(i), status: 200, rate: rate, peer: "orders"),
            sp(t, 4, parent: 3, kind: .server, service: "orders", start: start + 3 * ms, durationMs: 8, status: 200, rate: rate),
            sp(t, 5, parent: 2, kind: .client, service: "frontend", start: start + 20 * ms, durationMs: 20, status: failing ? 503 : 200, rate: rate, peer: "payments"),
            sp(t, 6, parent: 5, kind: .server, service: "payments", start: start + 21 * ms, durationMs: 18, status: failing ? 503 : 200, rate: rate, error: failing),
            sp(t, 7, parent: 2, kind: .client, service: "frontend", start: start + 30 * ms, durationMs: 5, status: 200, rate: rate, peer: "api.stripe.example"),
        ]
    }
    return spans
}

