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

    /// Jaeger's `model.TraceIDFromString`: up to 32 hex digits, any case, leading zeros
    /// optional. All zeros parses (and is then not found), as in Jaeger.
    static func parseTraceID(_ raw: String) throws(HTTPFailure) -> TraceID? {
        guard let id = ZipkinQueryAPI.traceID(raw) else {
            guard !raw.isEmpty, raw.count <= 32, raw.allSatisfy(\.isHexDigit) else {
                throw .badRequest("traceID '\(raw)' is not a valid hex trace id (up to 32 hex characters)")
            }
            return nil  // all zeros: valid syntax, never stored
        }
        return id
    }

    private func trace(_ raw: String) async throws -> Response {
        guard let id = try Self.parseTraceID(raw) else { throw HTTPFailure.notFound("trace not found") }
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
            // Jaeger unmarshals into map[string]string: a number or bool value is refused.
            for (key, value) in object {
                guard let text = value as? String else {
                    throw .badRequest("malformed 'tags' parameter: value of '\(key)' must be a string")
                }
                tags[key] = text
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

    /// Jaeger's `parseTraceQueryParams`: `start`/`end` any int64 µs (default end now, start two
    /// days before it; `lookback` is the UI's and ignored, as Jaeger ignores it), `limit` any
    /// int32 (default 100; zero or less also 100), durations compared only when both are set.
    /// A window that ends before it starts matches nothing; Jaeger does not refuse it either.
    func query(from request: Request) throws(HTTPFailure) -> TraceQuery? {
        let params = QueryParameters(request)
        guard let service = params.string("service") else { throw .badRequest("parameter 'service' is required") }
        let nowMicros = Int64(WallClock.nowNanos() / 1_000)
        let end = min(try params.int64("end", min: Int64.min) ?? nowMicros, QueryParameters.maxMicros)
        let start = try params.int64("start", min: Int64.min) ?? (nowMicros - 2 * 86_400 * 1_000_000)
        let minDuration = try params.goDurationNanos("minDuration")
        let maxDuration = try params.goDurationNanos("maxDuration")
        if let minDuration, let maxDuration, minDuration > 0, maxDuration > 0, maxDuration < minDuration {
            throw .badRequest("'maxDuration' should be greater than 'minDuration'")
        }
        let tags = try Self.parseTags(params)
        let limit = try params.int64("limit", min: Int64(Int32.min), max: Int64(Int32.max)) ?? 100
        guard end >= 0, start <= end else { return nil }
        var operation = params.string("operation")
        if operation == "all" { operation = nil }
        return TraceQuery(
            serviceName: service,
            remoteServiceName: nil,
            operationName: operation,
            spanKind: nil,
            tags: tags,
            annotationTerms: [],
            minDurationNanos: minDuration.flatMap { $0 > 0 ? $0 : nil },
            maxDurationNanos: maxDuration.flatMap { $0 > 0 ? $0 : nil },
            startTimeMinNanos: UInt64(max(0, start)) * 1_000,
            startTimeMaxNanos: UInt64(end) * 1_000 + 999,
            limit: limit > 0 ? Int(min(limit, 100_000)) : 100
        )
    }

    private func search(_ request: Request) async throws -> Response {
        let params = QueryParameters(request)
        let requestedIDs = params.all("traceID")
        if !requestedIDs.isEmpty {
            var ids: [TraceID] = []
            var errors: [(code: Int?, msg: String, traceID: String?)] = []
            for raw in requestedIDs {
                if let id = try Self.parseTraceID(raw) { ids.append(id) } else { errors.append((nil, "trace not found", raw)) }
            }
            let found = try await store.traces(ids: ids)
            var traces: [[Span]] = []
            // As Jaeger's tracesByIDs: a missing trace is an error entry without a code.
            for (id, spans) in zip(ids, found) {
                if spans.isEmpty { errors.append((nil, "trace not found", id.hex)) } else { traces.append(spans) }
            }
            return .bytes(JaegerJSON.encodeEnvelope(traces: traces, errors: errors), contentType: "application/json")
        }
        guard let query = try query(from: request) else {
            return .bytes(JaegerJSON.encodeEnvelope(traces: []), contentType: "application/json")
        }
        let ids = try await store.findTraceIDs(query)
        let traces = try await store.traces(ids: ids).filter { !$0.isEmpty }
        return .bytes(JaegerJSON.encodeEnvelope(traces: traces), contentType: "application/json")
    }

    /// Jaeger's `parseDependenciesQueryParams`: `endTs` ms (default now), `lookback` ms
    /// (default 24 h); a lookback of zero or less is an empty window.
    private func dependencies(_ request: Request) async throws -> Response {
        let params = QueryParameters(request)
        let endTs = min(try params.int64("endTs", min: Int64.min) ?? Int64(WallClock.nowNanos() / 1_000_000), QueryParameters.maxMillis)
        let lookback = try params.int64("lookback", min: Int64.min) ?? 86_400_000
        var links: [DependencyLink] = []
        if endTs >= 0, lookback > 0 {
            let start = endTs > lookback ? UInt64(endTs - lookback) * 1_000_000 : 0
            links = try await store.dependencies(startNanos: start, endNanos: UInt64(endTs) * 1_000_000 + 999_999)
        }
        if let service = params.string("service") {
            links = links.filter { $0.parent == service || $0.child == service }
        }
        return .json(Self.envelope(data: DependencyJSON.encode(links, omitZeroErrors: false), total: links.count))
    }
}
