import HTTPTypes
import Hummingbird
import TraceWire

/// OTLP/HTTP `POST /v1/traces`, protobuf or JSON (answering in the type it was sent), gzip
/// or not. Invalid spans are dropped individually and reported through `partial_success`,
/// as the OTLP spec asks; a body that cannot be parsed at all is a 400 `google.rpc.Status`.
struct OTLPReceiver: Sendable {
    let wiring: ReceiverWiring

    init(body: IngestBody, ingestor: SpanIngestor, metrics: CollectorMetrics) {
        wiring = ReceiverWiring(body: body, ingestor: ingestor, metrics: metrics, protocol: "otlp")
    }

    static let forwardedField = HTTPField.Name(IngestPipeline.forwardedHeader)

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v1/traces") { request, _ in await self.handle(request) }
    }

    func handle(_ request: Request) async -> Response {
        let type = mediaType(of: request)
        let isJSON = type == "application/json"
        let counters = isJSON ? wiring.json : wiring.proto
        counters.requests.increment()
        do throws(HTTPFailure) {
            guard isJSON || type == "application/x-protobuf" || type == "application/protobuf" else {
                throw HTTPFailure(
                    status: .unsupportedMediaType,
                    message: "unsupported Content-Type '\(type ?? "")': send application/x-protobuf or application/json")
            }
            let bytes = try await wiring.body.read(request)
            let batch: DecodedBatch
            do {
                batch = isJSON ? try OTLPJSON.decode(bytes) : try OTLPProto.decode(bytes)
            } catch {
                throw HTTPFailure.badRequest(error.message)
            }
            let forwarded = Self.forwardedField.flatMap { request.headers[$0] } == "1"
            try await wiring.ingestor.ingest(batch, counters: counters, forwarded: forwarded)
            let message = Self.summary(of: batch)
            let rejected = batch.rejected.count
            if isJSON {
                return .bytes(OTLPJSON.encodeResponse(rejectedSpans: rejected, errorMessage: message), contentType: "application/json")
            }
            return .bytes(OTLPProto.encodeResponse(rejectedSpans: rejected, errorMessage: message), contentType: "application/x-protobuf")
        } catch {
            if error.status != .serviceUnavailable { counters.badRequests.increment() }
            var response = isJSON
                ? Response.json(GoogleRPCStatus.json(code: error.grpcCode, message: error.message), status: error.status)
                : Response.bytes(GoogleRPCStatus.proto(code: error.grpcCode, message: error.message), status: error.status,
                                 contentType: "application/x-protobuf")
            response.applyRetryAfter(error)
            return response
        }
    }

    /// One line a person can act on: how many spans were dropped and the first few reasons.
    static func summary(of batch: DecodedBatch) -> String? {
        var parts: [String] = []
        if !batch.rejected.isEmpty {
            let shown = batch.rejected.prefix(5).map { "\($0.location): \($0.reason)" }
            let more = batch.rejected.count > 5 ? "; and \(batch.rejected.count - 5) more" : ""
            parts.append("rejected \(batch.rejected.count) span(s): " + shown.joined(separator: "; ") + more)
        }
        if batch.truncatedValues > 0 {
            parts.append("truncated \(batch.truncatedValues) attribute value(s) longer than \(WireLimits.default.maxAttributeValueBytes) bytes")
        }
        return parts.isEmpty ? nil : parts.joined(separator: ". ")
    }
}

extension HTTPFailure {
    /// google.rpc.Code for the body of an OTLP failure.
    var grpcCode: Int {
        switch status.code {
        case 400, 413, 415: return 3  // INVALID_ARGUMENT
        case 429, 503: return 14  // UNAVAILABLE
        default: return 13  // INTERNAL
        }
    }
}

/// `google.rpc.Status{int32 code = 1; string message = 2}`, hand-encoded: two fields do not
/// justify generating the whole googleapis tree.
enum GoogleRPCStatus {
    static func proto(code: Int, message: String) -> [UInt8] {
        var out: [UInt8] = [0x08]
        appendVarint(UInt64(code), to: &out)
        let utf8 = Array(message.utf8)
        out.append(0x12)
        appendVarint(UInt64(utf8.count), to: &out)
        out.append(contentsOf: utf8)
        return out
    }

    static func json(code: Int, message: String) -> String {
        "{\"code\":\(code),\"message\":\(JSONString.quote(message))}"
    }

    private static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
