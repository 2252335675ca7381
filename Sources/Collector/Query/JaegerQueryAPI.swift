import Foundation
import Hummingbird
import TraceModel
import TraceStorage
import TraceWire

/// The classic Jaeger JSON API (`/api/...` on the query port) that Jaeger UI 1.x and Grafana's
/// Jaeger data source call, with Jaeger's envelope and errors. Times are epoch µs, durations
/// Go duration strings.
struct JaegerQueryAPI: Sendable {
    let store: any TraceStore

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/services") { _, _ in await self.respond { try await self.services() } }
        router.get("/api/services/{service}/operations") { _, context in
            await self.respond { try await self.legacyOperations(context.parameters.get("service") ?? "") }
        }
        router.get("/api/operations") { request, _ in await self.respond { try await self.operations(request) } }
        router.get("/api/traces") { request, _ in await self.respond { try await self.search(request) } }
        router.get("/api/traces/{traceID}") { _, context in
            await self.respond { try await self.trace(context.parameters.get("traceID") ?? "") }
        }
        router.get("/api/dependencies") { request, _ in await self.respond { try await self.dependencies(request) } }
    }

    private func respond(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let failure as HTTPFailure {
            return .json(Self.envelope(data: "null", total: 0, errors: [(failure.status.code, failure.message, nil)]), status: failure.status)
        } catch {
            return .json(Self.envelope(data: "null", total: 0, errors: [(500, "query failed: \(error)", nil)]), status: .internalServerError)
        }
    }

    static func envelope(data: String, total: Int, errors: [(Int, String, String?)] = []) -> String {
        var errorsJSON = "null"
        if !errors.isEmpty {
            errorsJSON = "[" + errors.map { code, msg, traceID in
                var item = "{\"code\":\(code),\"msg\":\(JSONString.quote(msg))"
                if let traceID { item += ",\"traceID\":\(JSONString.quote(traceID))" }
                return item + "}"
            }.joined(separator: ",") + "]"
        }
        return "{\"data\":\(data),\"total\":\(total),\"limit\":0,\"offset\":0,\"errors\":\(errorsJSON)}"
    }

    private func services() async throws -> Response {
        let names = try await store.serviceNames()
        return .json(Self.envelope(data: JSONString.array(names), total: names.count))
    }

    private func legacyOperations(_ service: String) async throws -> Response {
        let names = Set(try await store.operations(service: service, kind: nil).map(\.name)).sorted()
        return .json(Self.envelope(data: JSONString.array(names), total: names.count))
    }

    private func operations(_ request: Request) async throws -> Response {
        let params = QueryParameters(request)
        guard let service = params.string("service") else { throw HTTPFailure.badRequest("parameter 'service' is required") }
        var kind: SpanKind?
        if let raw = params.string("spanKind") {
            guard let parsed = SpanKind(jaegerName: raw) else {
                throw HTTPFailure.badRequest("parameter 'spanKind' must be one of server, client, producer, consumer, internal; got \"\(raw)\"")
            }
            kind = parsed
        }
        let ops = try await store.operations(service: service, kind: kind)
        let items = ops.map { op in
            "{\"name\":\(JSONString.quote(op.name)),\"spanKind\":\(JSONString.quote(op.kind == .unspecified ? "" : op.kind.jaegerName))}"
        }
        return .json(Self.envelope(data: "[" + items.joined(separator: ",") + "]", total: ops.count))
    }

    static func parseTraceID(_ raw: String) throws(HTTPFailure) -> TraceID {
        // Jaeger accepts ids shorter than 16 digits (leading zeros dropped); pad them.
        var hex = raw.lowercased()
        if !hex.isEmpty, hex.count < 16 { hex = String(repeating: "0", count: 16 - hex.count) + hex }
        if hex.count > 16, hex.count < 32 { hex = String(repeating: "0", count: 32 - hex.count) + hex }
        guard let id = TraceID(hex: hex) else {
            throw .badRequest("traceID '\(raw)' is not a valid hex trace id (up to 32 hex characters, not all zero)")
        }
        return id
    }

    private func trace(_ raw: String) async throws -> Response {
        let id = try Self.parseTraceID(raw)
        let spans = try await store.trace(id: id)
        guard !spans.isEmpty else { throw HTTPFailure.notFound("trace not found") }
        return .bytes(JaegerJSON.encodeEnvelope(traces: [spans]), contentType: "application/json")
    }

    /// Tags come as a JSON object (`tags={"error":"true"}`) and/or repeated `tag=key:value`.
    static func parseTags(_ params: QueryParameters) throws(HTTPFailure) -> [String: String] {
        var tags: [String: String] = [:]
        for raw in params.all("tags") {
            guard let object = try? JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: Any] else {
                throw .badRequest("parameter 'tags' must be a JSON object of strings, like {\"error\":\"true\"}; got \(raw)")
            }
            for (key, value) in object {
                switch value {
                case let s as String: tags[key] = s
                case let n as NSNumber: tags[key] = n.stringValue
                default: throw .badRequest("parameter 'tags': value of '\(key)' must be a string")
                }
            }
        }
        for raw in params.all("tag") {
            guard let colon = raw.firstIndex(of: ":") else {
                throw .badRequest("parameter 'tag' must look like key:value, got \"\(raw)\"")
            }
            tags[String(raw[..<colon])] = String(raw[raw.index(after: colon)...])
        }
        return tags
    }

    func query(from request: Request) throws(HTTPFailure) -> TraceQuery {
        let params = QueryParameters(request)
        guard let service = params.string("service") else { throw .badRequest("parameter 'service' is required") }
        let nowMicros = Int64(WallClock.nowNanos() / 1_000)
        let end = try params.int64("end", min: 0, max: QueryParameters.maxMicros) ?? nowMicros
        var start = try params.int64("start", min: 0, max: QueryParameters.maxMicros)
        if start == nil, let lookback = try params.goDurationNanos("lookback") {
            start = max(0, end - Int64(lookback / 1_000))
        }
        let startMicros = start ?? max(0, end - 2 * 86_400 * 1_000_000)
        guard startMicros <= end else { throw .badRequest("parameter 'start' must not be after 'end'") }
        let minDuration = try params.goDurationNanos("minDuration")
        let maxDuration = try params.goDurationNanos("maxDuration")
        if let minDuration, let maxDuration, maxDuration < minDuration {
            throw .badRequest("'maxDuration' should be greater than 'minDuration'")
        }
        var operation = params.string("operation")
        if operation == "all" { operation = nil }
        return TraceQuery(
            serviceName: service,
            remoteServiceName: nil,
            operationName: operation,
            spanKind: nil,
            tags: try Self.parseTags(params),
            annotationTerms: [],
            minDurationNanos: minDuration,
            maxDurationNanos: maxDuration,
            startTimeMinNanos: UInt64(startMicros) * 1_000,
            startTimeMaxNanos: UInt64(end) * 1_000 + 999,
            limit: try params.positiveInt("limit") ?? 100
        )
    }

    private func search(_ request: Request) async throws -> Response {
        let params = QueryParameters(request)
        let requestedIDs = params.all("traceID")
        if !requestedIDs.isEmpty {
            var ids: [TraceID] = []
            for raw in requestedIDs { ids.append(try Self.parseTraceID(raw)) }
            let found = try await store.traces(ids: ids)
            var traces: [[Span]] = []
            var errors: [(code: Int?, msg: String, traceID: String?)] = []
            for (id, spans) in zip(ids, found) {
                if spans.isEmpty { errors.append((404, "trace not found", id.hex)) } else { traces.append(spans) }
            }
            return .bytes(JaegerJSON.encodeEnvelope(traces: traces, errors: errors), contentType: "application/json")
        }
        let ids = try await store.findTraceIDs(try query(from: request))
        let traces = try await store.traces(ids: ids).filter { !$0.isEmpty }
        return .bytes(JaegerJSON.encodeEnvelope(traces: traces), contentType: "application/json")
    }

    private func dependencies(_ request: Request) async throws -> Response {
        let params = QueryParameters(request)
        let window = try params.millisecondWindow()
        var links = try await store.dependencies(startNanos: window.start, endNanos: window.end)
        if let service = params.string("service") {
            links = links.filter { $0.parent == service || $0.child == service }
        }
        return .json(Self.envelope(data: DependencyJSON.encode(links, omitZeroErrors: false), total: links.count))
    }
}
