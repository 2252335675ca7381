import Hummingbird
import TraceModel
import TraceWire

/// `POST /api/v2/spans`: Zipkin v2 JSON or proto3 `ListOfSpans`, gzip or not. Answers 202.
/// As in Zipkin, decoding is synchronous and a bad span rejects the whole batch with a 400
/// that names it, so the client sees data errors instead of silent loss.
struct ZipkinReceiver: Sendable {
    let wiring: ReceiverWiring

    init(body: IngestBody, ingestor: SpanIngestor, metrics: CollectorMetrics) {
        wiring = ReceiverWiring(body: body, ingestor: ingestor, metrics: metrics, protocol: "zipkin")
    }

    func register(on router: Router<BasicRequestContext>) {
        router.post("/api/v2/spans") { request, _ in await self.handle(request) }
    }

    func handle(_ request: Request) async -> Response {
        let type = mediaType(of: request)
        let isProto = type == "application/x-protobuf" || type == "application/protobuf"
        let counters = isProto ? wiring.proto : wiring.json
        counters.requests.increment()
        do throws(HTTPFailure) {
            if let type, !isProto, type != "application/json" {
                throw HTTPFailure(
                    status: .unsupportedMediaType,
                    message: "unsupported Content-Type '\(type)': send application/json or application/x-protobuf")
            }
            let bytes = try await wiring.body.read(request)
            // The spec marks the body required. An empty proto3 ListOfSpans is zero bytes, so
            // only a JSON body can be missing; `[]` is an empty list and accepted.
            if bytes.isEmpty, !isProto {
                throw HTTPFailure.badRequest("request body is required: a JSON array of spans (send [] for none)")
            }
            let batch: DecodedBatch
            do {
                batch = isProto ? try ZipkinProto.decode(bytes) : try ZipkinJSON.decode(bytes)
            } catch {
                throw HTTPFailure.badRequest(error.message)
            }
            if let duplicate = Self.duplicateAnnotation(in: batch) { throw HTTPFailure.badRequest(duplicate) }
            try await wiring.ingestor.ingest(batch, counters: counters)
            return Response(status: .accepted)
        } catch {
            if error.status == .badRequest || error.status == .contentTooLarge || error.status == .unsupportedMediaType {
                counters.badRequests.increment()
            }
            var response = Response.text(error.message + "\n", status: error.status)
            response.applyRetryAfter(error)
            return response
        }
    }

    /// The spec's `annotations` are `uniqueItems`: the same timestamp and value twice in one
    /// span is refused, naming the span.
    static func duplicateAnnotation(in batch: DecodedBatch) -> String? {
        for (index, span) in batch.spans.enumerated() where span.events.count > 1 {
            var seen = Set<SpanEvent>()
            for event in span.events where !seen.insert(event).inserted {
                return "spans[\(index)].annotations: '\(event.name)' at \(event.timeNanos / 1_000) is given twice; annotations must be unique"
            }
        }
        return nil
    }
}
