import Hummingbird
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
            let batch: DecodedBatch
            do {
                batch = isProto ? try ZipkinProto.decode(bytes) : try ZipkinJSON.decode(bytes)
            } catch {
                throw HTTPFailure.badRequest(error.message)
            }
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
}
