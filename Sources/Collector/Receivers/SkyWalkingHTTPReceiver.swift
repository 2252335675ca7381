import Hummingbird
import Logging
import SwiftProtobuf
import Synchronization
import TraceModel
import TraceWire

/// SkyWalking agents' HTTP report on 12800 (the OAP's REST port), as the Python agent sends it
/// with `agent_protocol="http"`: `POST /v3/segment` (one JSON `SegmentObject`) and
/// `POST /v3/segments` (an array), plus the management calls the agents make
/// (`/v3/management/reportProperties`, `/v3/management/keepAlive`), answered `{}` as the OAP
/// answers them. Logs (`/v3/logs`) are answered and not kept, noted once in the log.
///
/// A body that is not JSON at all is a 400 with nothing stored. Otherwise every valid segment
/// (and every valid span of a partly bad one) is stored, and if anything was rejected the answer
/// is a 400 naming each field and saying what was stored, so nothing valid is lost and nothing
/// invalid is silent.
struct SkyWalkingHTTPReceiver: Sendable {
    let wiring: ReceiverWiring
    let notices: SkyWalkingNotices

    init(body: IngestBody, ingestor: SpanIngestor, metrics: CollectorMetrics, notices: SkyWalkingNotices) {
        wiring = ReceiverWiring(body: body, ingestor: ingestor, metrics: metrics, protocol: "skywalking")
        self.notices = notices
    }

    func register(on router: Router<BasicRequestContext>) {
        router.post("/v3/segment") { request, _ in await self.segments(request, array: false) }
        router.post("/v3/segments") { request, _ in await self.segments(request, array: true) }
        router.post("/v3/management/reportProperties") { request, _ in
            await self.management(request) { self.notices.instance(json: $0) }
        }
        router.post("/v3/management/keepAlive") { request, _ in await self.management(request) { _ in } }
        router.post("/v3/logs") { request, _ in
            await self.management(request) { _ in self.notices.ignored("/v3/logs") }
        }
    }

    func segments(_ request: Request, array: Bool) async -> Response {
        let counters = wiring.json
        counters.requests.increment()
        do throws(HTTPFailure) {
            try Self.requireJSON(request)
            let bytes = try await wiring.body.read(request)
            let batch: DecodedBatch
            do {
                batch = try SkyWalkingSegment.decodeJSON(bytes, array: array)
            } catch {
                throw HTTPFailure.badRequest(error.message)
            }
            try await wiring.ingestor.ingest(batch, counters: counters)
            guard batch.rejected.isEmpty else {
                throw HTTPFailure.badRequest(Self.rejectionSummary(batch.rejected) + "; stored \(batch.spans.count) span(s)")
            }
            return .json("{}")
        } catch {
            if error.status != .serviceUnavailable { counters.badRequests.increment() }
            var response = Response.text(error.message + "\n", status: error.status)
            response.applyRetryAfter(error)
            return response
        }
    }

    /// Reads the body (so a bad one is still answered 400) and answers the OAP's empty `Commands`.
    func management(_ request: Request, _ note: ([UInt8]) -> Void) async -> Response {
        do throws(HTTPFailure) {
            try Self.requireJSON(request)
            note(try await wiring.body.read(request))
            return .json("{}")
        } catch {
            return .text(error.message + "\n", status: error.status)
        }
    }

    /// JSON, or no type at all (curl's default is form data, which is refused).
    static func requireJSON(_ request: Request) throws(HTTPFailure) {
        if let type = mediaType(of: request), type != "application/json" {
            throw HTTPFailure(status: .unsupportedMediaType, message: "unsupported Content-Type '\(type)': send application/json")
        }
    }

    /// "rejected 2: segments[1].spans[0].spanType: …; segments[3].traceId: …" (the first five).
    static func rejectionSummary(_ rejected: [SpanRejection]) -> String {
        let shown = rejected.prefix(5).map(\.description).joined(separator: "; ")
        let more = rejected.count > 5 ? "; and \(rejected.count - 5) more" : ""
        return "rejected \(rejected.count): " + shown + more
    }
}

/// What SkyWalking agents say that is worth a log line, each said once: an instance reporting
/// in, and calls whose data meshtrace answers but does not keep.
final class SkyWalkingNotices: Sendable {
    private let logger: Logger
    private let seen = Mutex<Set<String>>([])

    init(logger: Logger) { self.logger = logger }

    func ignored(_ call: String) {
        guard first("ignored " + call) else { return }
        logger.notice("SkyWalking agent call answered but not stored (meshtrace keeps traces only); logged once", metadata: ["call": "\(call)"])
    }

    func instance(properties bytes: [UInt8]) {
        guard let message = try? Skywalking_V3_InstanceProperties(serializedBytes: bytes) else { return }
        instance(service: message.service, instance: message.serviceInstance)
    }

    func instance(json bytes: [UInt8]) {
        guard let root = try? JSONParser.parse(bytes) else { return }
        instance(service: root["service"]?.stringValue ?? "", instance: root["serviceInstance"]?.stringValue ?? "")
    }

    private func instance(service: String, instance: String) {
        guard first("instance \(service)/\(instance)") else { return }
        logger.info("SkyWalking agent reporting", metadata: ["service": "\(service)", "instance": "\(instance)"])
    }

    private func first(_ key: String) -> Bool {
        seen.withLock { set in
            // Bounded: instance names change on every agent restart.
            if set.count > 10_000 { set.removeAll() }
            return set.insert(key).inserted
        }
    }
}
