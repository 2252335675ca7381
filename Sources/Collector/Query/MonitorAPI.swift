import Hummingbird
import TraceModel
import TraceStorage

/// `GET /api/meshtrace/monitor?lookback=15m[&service=S][&spanKind=server][&points=30][&endTs=<ms>]`:
/// RED metrics (request rate, error rate, p50/p95/p99 latency) per service over time, and per
/// operation of `service` when given. Jaeger's Monitor tab without a Prometheus: computed from the
/// stored spans of one kind (server by default: the requests a service answered), each weighing
/// `1 / sampling.rate` as in the service graph, so a service's rate here is its node's rate there.
struct MonitorAPI: Sendable {
    let store: any TraceStore
    /// Spans read per request at most; beyond it the answer says `"truncated":true`.
    var maxSpans = 500_000

    struct Series: Encodable {
        var name: String
        var summary: REDSeries.Point
        var series: [REDSeries.Point]
    }

    struct Body: Encodable {
        var lookbackMs: UInt64
        var endTs: Int64
        var stepMs: UInt64
        var spanKind: String
        var spanCount: Int
        var truncated: Bool
        var services: [Series]
        /// Present when `service` was given.
        var service: String?
        var operations: [Series]?
    }

    static let kinds: [String: SpanKind] = [
        "server": .server, "client": .client, "producer": .producer, "consumer": .consumer, "internal": .internal,
    ]

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/meshtrace/monitor") { request, _ in
            await QueryResponder.respond("monitor") { try QueryResponder.encode(await self.monitor(QueryParameters(request))) }
        }
    }

    func monitor(_ params: QueryParameters) async throws -> Body {
        let window = try QueryWindow(params, defaultLookbackNanos: 15 * 60 * 1_000_000_000, examples: "5m, 15m or 1h")
        let step = try QueryWindow.stepNanos(params, lookbackNanos: window.lookbackNanos)
        let kindName = params.string("spanKind") ?? "server"
        guard let kind = Self.kinds[kindName] else {
            throw HTTPFailure.badRequest("parameter 'spanKind' must be one of \(Self.kinds.keys.sorted().joined(separator: ", ")), got \"\(kindName)\"")
        }
        let service = params.string("service").flatMap { $0.isEmpty ? nil : $0 }
        let spans = try await store.spans(startNanos: window.startNanos, endNanos: window.endNanos, limit: maxSpans)
        let body = Self.compute(spans: spans, kind: kind, kindName: kindName, service: service, window: window, stepNanos: step)
        return Body(lookbackMs: window.lookbackNanos / 1_000_000, endTs: window.endMs, stepMs: step / 1_000_000, spanKind: kindName,
                 spanCount: body.spanCount, truncated: spans.count >= maxSpans, services: body.services,
                 service: service, operations: service == nil ? nil : body.operations)
    }

    static func compute(spans: [Span], kind: SpanKind, kindName: String, service: String?, window: QueryWindow, stepNanos: UInt64)
        -> (services: [Series], operations: [Series], spanCount: Int)
    {
        let empty = REDSeries(startNanos: window.startNanos, endNanos: window.endNanos, stepNanos: stepNanos)
        var services: [String: REDSeries] = [:]
        var operations: [String: REDSeries] = [:]
        var counted = 0
        for span in spans where span.kind == kind {
            let weight = ServiceGraph.weight(of: span)
            let outcome = ServiceGraph.outcome(of: span)
            let ms = Double(span.durationNanos) / 1e6
            counted += 1
            services[span.serviceName, default: empty].add(atNanos: span.startTimeNanos, weight: weight, outcome: outcome, durationMs: ms)
            if span.serviceName == service {
                operations[span.name, default: empty].add(atNanos: span.startTimeNanos, weight: weight, outcome: outcome, durationMs: ms)
            }
        }
        func list(_ byName: [String: REDSeries]) -> [Series] {
            byName.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }.map { Series(name: $0.key, summary: $0.value.summary, series: $0.value.points) }
        }
        return (list(services), list(operations), counted)
    }
}
