import GRPCCore
import GRPCProtobuf
import TraceWire

/// OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`, unary.
///
/// The request is decoded by the hand-written OTLP decoder plugged in as grpc-swift's message
/// codec (`OTLPBatchDeserializer`), not by the generated messages: it goes straight from the
/// received bytes to spans, as the HTTP receiver does (docs/performance.md has both measured).
///
/// Status codes follow the OTLP spec: INVALID_ARGUMENT (not retried) for a request that cannot
/// be parsed, UNAVAILABLE with `RetryInfo` (retried after the delay) when the ingest queue is
/// full, the store failed or the collector is stopping. The answer comes after the spans are
/// committed; spans dropped one by one are reported in `partial_success`.
package struct OTLPGRPCService: RegistrableRPCService {
    package static let export = MethodDescriptor(
        service: ServiceDescriptor(fullyQualifiedService: "opentelemetry.proto.collector.trace.v1.TraceService"),
        method: "Export")

    let ingestor: SpanIngestor
    let counters: CollectorMetrics.ProtocolCounters
    let limits: WireLimits

    init(ingestor: SpanIngestor, metrics: CollectorMetrics, limits: WireLimits = .default) {
        self.ingestor = ingestor
        self.counters = metrics.counters(protocol: "otlp_grpc")
        self.limits = limits
    }

    package func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(
            forMethod: Self.export,
            deserializer: OTLPBatchDeserializer(limits: limits),
            serializer: RawBytesSerializer()
        ) { request, _ in
            let response = try await self.export(request)
            return StreamingServerResponse(single: ServerResponse(message: response))
        }
    }

    func export(_ request: StreamingServerRequest<DecodedBatch>) async throws -> [UInt8] {
        counters.requests.increment()
        let batch: DecodedBatch
        do {
            batch = try await ServerRequest(stream: request).message
        } catch let error as RPCError {
            counters.badRequests.increment()
            throw error
        } catch {
            counters.badRequests.increment()
            throw RPCError(code: .invalidArgument, message: "\(error)")
        }
        do {
            try await ingestor.ingest(batch, counters: counters)
        } catch {
            throw Self.status(for: error)
        }
        let rejected = batch.rejected.count
        return OTLPProto.encodeResponse(rejectedSpans: rejected, errorMessage: OTLPReceiver.summary(of: batch))
    }

    /// The ingest failures are all "retry later" (HTTP 503 + Retry-After on the HTTP paths):
    /// here UNAVAILABLE with RetryInfo, the code OTLP's gRPC exporters retry.
    static func status(for failure: HTTPFailure) -> GRPCProtobuf.GoogleRPCStatus {
        guard failure.status == .serviceUnavailable else {
            return GRPCProtobuf.GoogleRPCStatus(code: .internalError, message: failure.message, details: [])
        }
        let delay = Duration.seconds(failure.retryAfter ?? 1)
        return GRPCProtobuf.GoogleRPCStatus(code: .unavailable, message: failure.message, details: .retryInfo(delay: delay))
    }
}

/// The hand-written OTLP decoder as grpc-swift's message codec: bytes in, spans out, with
/// the decoder's own error text (which field, where) as the INVALID_ARGUMENT message.
package struct OTLPBatchDeserializer: MessageDeserializer {
    let limits: WireLimits

    package init(limits: WireLimits) { self.limits = limits }

    package func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> DecodedBatch {
        let result = serializedMessageBytes.withUnsafeBytes { buffer in
            Result { () throws(WireError) in try OTLPProto.decode(buffer, limits: limits) }
        }
        switch result {
        case .success(let batch): return batch
        case .failure(let error): throw RPCError(code: .invalidArgument, message: error.message)
        }
    }
}

/// Responses already encoded (`OTLPProto.encodeResponse`) go out as they are.
package struct RawBytesSerializer: MessageSerializer {
    package init() {}

    package func serialize<Bytes: GRPCContiguousBytes>(_ message: [UInt8]) throws -> Bytes {
        Bytes(message)
    }
}
