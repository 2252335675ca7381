import GRPCCore
import GRPCProtobuf
import Logging
import SwiftProtobuf
import TraceWire

/// SkyWalking agents' gRPC report on 11800 (the OAP's port): `TraceSegmentReportService/collect`
/// (client streaming, one `SegmentObject` per message, what every agent uses) and
/// `collectInSync` (unary, a `SegmentCollection`).
///
/// Each message is decoded and committed as it arrives, so a long-lived stream's spans show up
/// at once, and one bad message costs only itself: the stream is read to its end and then
/// answered INVALID_ARGUMENT naming the message and field (SkyWalking's agents log the status
/// and go on). The answer is SkyWalking's empty `Commands`.
struct SkyWalkingGRPCService: RegistrableRPCService {
    static let service = ServiceDescriptor(fullyQualifiedService: "skywalking.v3.TraceSegmentReportService")
    static let collect = MethodDescriptor(service: service, method: "collect")
    static let collectInSync = MethodDescriptor(service: service, method: "collectInSync")

    let ingestor: SpanIngestor
    let counters: CollectorMetrics.ProtocolCounters
    let limits: WireLimits

    init(ingestor: SpanIngestor, metrics: CollectorMetrics, limits: WireLimits = .default) {
        self.ingestor = ingestor
        self.counters = metrics.counters(protocol: "skywalking_grpc")
        self.limits = limits
    }

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(forMethod: Self.collect, deserializer: RawBytesDeserializer(), serializer: RawBytesSerializer()) { request, _ in
            let rejected = try await self.collect(request.messages)
            return StreamingServerResponse(single: try self.answer(rejected: rejected))
        }
        router.registerHandler(forMethod: Self.collectInSync, deserializer: RawBytesDeserializer(), serializer: RawBytesSerializer()) { request, _ in
            var rejected: [SpanRejection] = []
            for try await message in request.messages {
                rejected += try await self.collectInSync(message)
            }
            return StreamingServerResponse(single: try self.answer(rejected: rejected))
        }
    }

    /// Reads every message of the stream; returns the rejections.
    func collect(_ messages: RPCAsyncSequence<[UInt8], any Error>) async throws -> [SpanRejection] {
        counters.requests.increment()
        var rejected: [SpanRejection] = []
        var index = 0
        for try await message in messages {
            defer { index += 1 }
            let batch: DecodedBatch
            do {
                batch = try SkyWalkingSegment.decodeProto(message, at: "message[\(index)]", limits: limits)
            } catch {
                rejected.append(SpanRejection(location: "message[\(index)]", reason: error.message))
                counters.rejected.increment()
                continue
            }
            try await ingest(batch)
            rejected += batch.rejected
        }
        return rejected
    }

    func collectInSync(_ message: [UInt8]) async throws -> [SpanRejection] {
        counters.requests.increment()
        let collection: Skywalking_V3_SegmentCollection
        do {
            collection = try Skywalking_V3_SegmentCollection(serializedBytes: message)
        } catch {
            counters.badRequests.increment()
            throw RPCError(code: .invalidArgument, message: "not a SkyWalking SegmentCollection: \(error)")
        }
        var batch = DecodedBatch()
        for (i, segment) in collection.segments.enumerated() {
            SkyWalkingSegment.append(segment, at: "segments[\(i)]", to: &batch, limits: limits)
        }
        try await ingest(batch)
        return batch.rejected
    }

    private func ingest(_ batch: DecodedBatch) async throws {
        do {
            try await ingestor.ingest(batch, counters: counters)
        } catch {
            throw OTLPGRPCService.status(for: error)
        }
    }

    private func answer(rejected: [SpanRejection]) throws -> ServerResponse<[UInt8]> {
        guard rejected.isEmpty else {
            counters.badRequests.increment()
            throw RPCError(code: .invalidArgument, message: SkyWalkingHTTPReceiver.rejectionSummary(rejected))
        }
        return ServerResponse(message: [])  // an empty `Commands`
    }
}

/// `ManagementService` (instance properties, keep-alive) answered as the OAP answers them, and
/// the agents' other reports (logs, meters, profiling, JVM/CLR metrics, events, dynamic
/// configuration) read to their end and answered with an empty `Commands`, so agents with their
/// defaults keep reporting traces; each ignored call is logged once.
struct SkyWalkingManagementService: RegistrableRPCService {
    static let management = ServiceDescriptor(fullyQualifiedService: "skywalking.v3.ManagementService")

    /// Calls whose data meshtrace does not keep: answered, not stored.
    static let ignored: [(service: String, method: String)] = [
        ("skywalking.v3.LogReportService", "collect"),
        ("skywalking.v3.MeterReportService", "collect"),
        ("skywalking.v3.MeterReportService", "collectBatch"),
        ("skywalking.v3.JVMMetricReportService", "collect"),
        ("skywalking.v3.CLRMetricReportService", "collect"),
        ("skywalking.v3.EventService", "collect"),
        ("skywalking.v3.ProfileTask", "getProfileTaskCommands"),
        ("skywalking.v3.ProfileTask", "collectSnapshot"),
        ("skywalking.v3.ProfileTask", "reportTaskFinish"),
        ("skywalking.v3.ConfigurationDiscoveryService", "fetchConfigurations"),
        ("skywalking.v3.SpanAttachedEventReportService", "collect"),
    ]

    let notices: SkyWalkingNotices

    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        for method in ["reportInstanceProperties", "keepAlive"] {
            router.registerHandler(
                forMethod: MethodDescriptor(service: Self.management, method: method), deserializer: RawBytesDeserializer(),
                serializer: RawBytesSerializer()
            ) { request, _ in
                for try await message in request.messages where method == "reportInstanceProperties" {
                    self.notices.instance(properties: message)
                }
                return StreamingServerResponse(single: ServerResponse(message: []))
            }
        }
        for call in Self.ignored {
            router.registerHandler(
                forMethod: MethodDescriptor(service: ServiceDescriptor(fullyQualifiedService: call.service), method: call.method),
                deserializer: RawBytesDeserializer(), serializer: RawBytesSerializer()
            ) { request, _ in
                for try await _ in request.messages {}
                self.notices.ignored("\(call.service)/\(call.method)")
                return StreamingServerResponse(single: ServerResponse(message: []))
            }
        }
    }
}

/// Messages as their bytes: decoded by the handler, which names what is wrong with each.
struct RawBytesDeserializer: MessageDeserializer {
    func deserialize<Bytes: GRPCContiguousBytes>(_ serializedMessageBytes: Bytes) throws -> [UInt8] {
        serializedMessageBytes.withUnsafeBytes { Array($0) }
    }
}
