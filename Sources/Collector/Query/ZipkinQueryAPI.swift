import Hummingbird
import TraceModel
import TraceStorage
import TraceWire

/// Zipkin's v2 query API on the Zipkin port, beside ingest, as Zipkin serves it
/// (Protos/zipkin/zipkin2-api.yaml). Times are epoch ms, durations µs.
struct ZipkinQueryAPI: Sendable {
    let store: any TraceStore

    func register(on router: Router<BasicRequestContext>) {
        router.get("/api/v2/services") { _, _ in await self.respond { try await self.services() } }
        router.get("/api/v2/spans") { request, _ in await self.respond { try await self.spanNames(request) } }
        router.get("/api/v2/remoteServices") { request, _ in await self.respond { try await self.remoteServices(request) } }
        router.get("/api/v2/traces") { request, _ in await self.respond { try await self.traces(request) } }
        router.get("/api/v2/trace/{traceId}") { _, context in
            await self.respond { try await self.trace(context.parameters.get("traceId") ?? "") }
        }
        router.get("/api/v2/traceMany") { request, _ in await self.respond { try await self.traceMany(request) } }
        router.get("/api/v2/dependencies") { request, _ in await self.respond { try await self.dependencies(request) } }
        router.get("/api/v2/autocompleteKeys") { _, _ in Response.json("[]") }
        router.get("/api/v2/autocompleteValues") { request, _ in
            await self.respond {
                guard QueryParameters(request).string("key") != nil else { throw HTTPFailure.badRequest("parameter 'key' is required") }
                return .json("[]")
            }
        }
        router.get("/health") { _, _ in Response.json("{\"status\":\"UP\",\"zipkin\":{\"status\":\"UP\"}}") }
    }

    private func respond(_ body: () async throws -> Response) async -> Response {
        do {
            return try await body()
        } catch let failure as HTTPFailure {
            return .text(failure.message + "\n", status: failure.status)
        } catch {
            return .text("query failed: \(error)\n", status: .internalServerError)
        }
    }

    private func services() async throws -> Response {
        .json(JSONString.array(try await store.serviceNames()))
    }

    private func requiredService(_ params: QueryParameters) throws(HTTPFailure) -> String {
        guard let service = params.string("serviceName") else { throw .badRequest("parameter 'serviceName' is required") }
        return service
    }

    private func spanNames(_ request: Request) async throws -> Response {
        let service = try requiredService(QueryParameters(request))
        let names = Set(try await store.operations(service: service, kind: nil).map(\.name)).sorted()
        return .json(JSONString.array(names))
    }

    private func remoteServices(_ request: Request) async throws -> Response {
        let service = try requiredService(QueryParameters(request))
        return .json(JSONString.array(try await store.remoteServiceNames(service: service)))
    }

    /// `annotationQuery`: `http.method=GET and error`: `k=v` matches a tag, a bare word an
    /// annotation value or a tag key; all terms must hold on one span.
    static func parseAnnotationQuery(_ text: String) -> (tags: [String: String], terms: [String]) {
        var tags: [String: String] = [:]
        var terms: [String] = []
        for raw in text.components(separatedBy: " and ") {
            let term = raw.trimmingSpaces()
            guard !term.isEmpty else { continue }
            if let eq = term.firstIndex(of: "=") {
                tags[String(term[..<eq])] = String(term[term.index(after: eq)...])
            } else {
                terms.append(term)
            }
        }
        return (tags, terms)
    }

    func query(from request: Request) throws(HTTPFailure) -> TraceQuery {
        let params = QueryParameters(request)
        let window = try params.millisecondWindow()
        let minDuration = try params.int64("minDuration", min: 0, max: QueryParameters.maxMicros)
        let maxDuration = try params.int64("maxDuration", min: 0, max: QueryParameters.maxMicros)
        if let minDuration, let maxDuration, maxDuration < minDuration {
            throw .badRequest("parameter 'maxDuration' must be >= 'minDuration'")
        }
        let parsed: (tags: [String: String], terms: [String]) = params.string("annotationQuery").map(Self.parseAnnotationQuery) ?? ([:], [])
        var spanName = params.string("spanName")
        if spanName == "all" { spanName = nil }
        return TraceQuery(
            serviceName: params.string("serviceName"),
            remoteServiceName: params.string("remoteServiceName"),
            operationName: spanName,
            spanKind: nil,
            tags: parsed.tags,
            annotationTerms: parsed.terms,
            minDurationNanos: minDuration.map { UInt64($0) * 1_000 },
            maxDurationNanos: maxDuration.map { UInt64($0) * 1_000 },
            startTimeMinNanos: window.start,
            startTimeMaxNanos: window.end,
            limit: try params.positiveInt("limit") ?? 10
        )
    }

    private func traces(_ request: Request) async throws -> Response {
        let ids = try await store.findTraceIDs(try query(from: request))
        let traces = try await store.traces(ids: ids).filter { !$0.isEmpty }
        return .bytes(ZipkinJSON.encode(traces: traces), contentType: "application/json")
    }

    static func parseTraceID(_ raw: String) throws(HTTPFailure) -> TraceID {
        guard let id = TraceID(hex: raw) else {
            throw .badRequest("traceId '\(raw)' is not 16 or 32 lower-hex characters")
        }
        return id
    }

    private func trace(_ raw: String) async throws -> Response {
        let id = try Self.parseTraceID(raw)
        let spans = try await store.trace(id: id)
        guard !spans.isEmpty else { throw HTTPFailure.notFound("\(raw.lowercased()) not found") }
        return .bytes(ZipkinJSON.encode(spans), contentType: "application/json")
    }

    private func traceMany(_ request: Request) async throws -> Response {
        guard let list = QueryParameters(request).string("traceIds") else {
            throw HTTPFailure.badRequest("parameter 'traceIds' is required: a comma-separated list of trace ids")
        }
        var ids: [TraceID] = []
        for part in list.split(separator: ",") {
            let id = try Self.parseTraceID(String(part).trimmingSpaces())
            if ids.contains(id) {
                throw HTTPFailure.badRequest("redundant traceId: \(id.hex)")
            }
            ids.append(id)
        }
        guard ids.count >= 2 else {
            throw HTTPFailure.badRequest("Use /api/v2/trace/{traceId} endpoint to retrieve a single trace")
        }
        let traces = try await store.traces(ids: ids).filter { !$0.isEmpty }
        return .bytes(ZipkinJSON.encode(traces: traces), contentType: "application/json")
    }

    private func dependencies(_ request: Request) async throws -> Response {
        let window = try QueryParameters(request).millisecondWindow(requireEnd: true)
        let links = try await store.dependencies(startNanos: window.start, endNanos: window.end)
        return .json(DependencyJSON.encode(links, omitZeroErrors: true))
    }
}

enum DependencyJSON {
    static func encode(_ links: [DependencyLink], omitZeroErrors: Bool) -> String {
        let items = links.map { link -> String in
            var s = "{\"parent\":\(JSONString.quote(link.parent)),\"child\":\(JSONString.quote(link.child)),\"callCount\":\(link.callCount)"
            if !(omitZeroErrors && link.errorCount == 0) { s += ",\"errorCount\":\(link.errorCount)" }
            return s + "}"
        }
        return "[" + items.joined(separator: ",") + "]"
    }
}
