import HTTPTypes
import Hummingbird
import TraceModel
import TraceStorage
import TraceWire

/// Zipkin's v2 query API on the Zipkin port, beside ingest, as Zipkin serves it and as its
/// published spec (`zipkin2-api.yaml`) documents it: times are epoch ms, durations µs.
///
/// Statuses are only those the spec lists for each operation: a value the spec's schema
/// allows never gets a 400 (a negative `limit`, a `maxDuration` below `minDuration` or an
/// empty window simply match nothing), an unknown or unparseable trace id is a 404, and a
/// method an operation does not declare is a 405 with `Allow`. A value of the wrong type
/// (`limit=abc`) is still a 400 that names the parameter. `scripts/test` runs schemathesis
/// against the spec (tests/interop/test_zipkin_api_spec.py).
struct ZipkinQueryAPI: Sendable {
    let store: any TraceStore
    var autocomplete = AutocompleteIndex(keys: [])

    /// The spec's operations and their methods (plus `/remoteServices`, which Zipkin serves
    /// but the spec omits); every other method on these paths is a 405.
    static let declaredMethods: [(path: String, methods: [HTTPRequest.Method])] = [
        ("/api/v2/services", [.get]), ("/api/v2/spans", [.get, .post]), ("/api/v2/remoteServices", [.get]),
        ("/api/v2/traces", [.get]), ("/api/v2/trace/{traceId}", [.get]), ("/api/v2/traceMany", [.get]),
        ("/api/v2/dependencies", [.get]), ("/api/v2/autocompleteKeys", [.get]), ("/api/v2/autocompleteValues", [.get]),
    ]

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
        router.get("/api/v2/autocompleteKeys") { _, _ in Response.json(JSONString.array(self.autocomplete.keys)) }
        router.get("/api/v2/autocompleteValues") { request, _ in
            await self.respond {
                guard let key = QueryParameters(request).present("key") else { throw HTTPFailure.badRequest("parameter 'key' is required") }
                return .json(JSONString.array(try await self.autocomplete.values(for: key, store: self.store)))
            }
        }
        router.get("/health") { _, _ in Response.json("{\"status\":\"UP\",\"zipkin\":{\"status\":\"UP\"}}") }
        Self.registerMethodNotAllowed(on: router)
    }

    /// 405 with `Allow`, as RFC 9110 asks, for the methods an operation does not declare.
    static func registerMethodNotAllowed(on router: Router<BasicRequestContext>) {
        // QUERY is the HTTP method draft (draft-ietf-httpbis-safe-method-w-body) testers now try.
        let query = HTTPRequest.Method("QUERY") ?? .options
        let all: [HTTPRequest.Method] = [.get, .post, .put, .delete, .patch, .head, .trace, query]
        for (path, methods) in declaredMethods {
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            for method in all where !methods.contains(method) && !(method == .head && methods.contains(.get)) {
                router.on(RouterPath(path), method: method) { request, _ in
                    var response = Response.text("\(request.method) is not allowed on \(path); use \(allow)\n", status: .methodNotAllowed)
                    response.headers[.allow] = allow
                    return response
                }
            }
        }
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
        guard let service = params.present("serviceName") else { throw .badRequest("parameter 'serviceName' is required") }
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

    /// Nil when the parameters, though valid, cannot match anything (a limit below 1, an empty
    /// window, `maxDuration` below `minDuration`): Zipkin's server refuses those with a 400 the
    /// spec does not list, so here they find nothing instead.
    func query(from request: Request) throws(HTTPFailure) -> TraceQuery? {
        let params = QueryParameters(request)
        // Every parameter is read (and a malformed one refused) before deciding nothing matches.
        let window = try params.zipkinWindow()
        let minDuration = try params.specInt64("minDuration").map { max(0, $0) }
        let maxDuration = try params.specInt64("maxDuration")
        let limit = try params.specInteger("limit") ?? 10
        guard let window, limit >= 1 else { return nil }
        if let maxDuration, maxDuration < (minDuration ?? 0) { return nil }
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
            minDurationNanos: minDuration.flatMap { $0 > 0 ? UInt64(min($0, QueryParameters.maxMicros)) * 1_000 : nil },
            maxDurationNanos: maxDuration.map { UInt64(min($0, QueryParameters.maxMicros)) * 1_000 },
            startTimeMinNanos: window.start,
            startTimeMaxNanos: window.end,
            limit: Int(min(limit, 100_000))
        )
    }

    private func traces(_ request: Request) async throws -> Response {
        guard let query = try query(from: request) else { return .json("[]") }
        let ids = try await store.findTraceIDs(query)
        let traces = try await store.traces(ids: ids).filter { !$0.isEmpty }
        return .bytes(ZipkinJSON.encode(traces: traces), contentType: "application/json")
    }

    /// Zipkin's normalisation (`Span.normalizeTraceId`): any case, up to 32 hex digits, short
    /// ids left-padded to 16 and 17 to 31 digits to 32. Nil for anything else, or all zeros.
    static func traceID(_ raw: String) -> TraceID? {
        var hex = raw.lowercased()
        guard !hex.isEmpty, hex.count <= 32 else { return nil }
        if hex.count < 16 { hex = String(repeating: "0", count: 16 - hex.count) + hex }
        if hex.count > 16, hex.count < 32 { hex = String(repeating: "0", count: 32 - hex.count) + hex }
        return TraceID(hex: hex)
    }

    static func parseTraceID(_ raw: String) throws(HTTPFailure) -> TraceID {
        guard let id = traceID(raw) else {
            throw .badRequest("traceId '\(raw)' is not 16 or 32 lower-hex characters")
        }
        return id
    }

    /// The spec lists 200 and 404 only: an id that cannot exist is not found, and says why.
    private func trace(_ raw: String) async throws -> Response {
        guard let id = Self.traceID(raw) else {
            throw HTTPFailure.notFound("\(raw) not found: a trace id is 16 or 32 lower-hex characters")
        }
        let spans = try await store.trace(id: id)
        guard !spans.isEmpty else { throw HTTPFailure.notFound("\(id.hex) not found") }
        return .bytes(ZipkinJSON.encode(spans), contentType: "application/json")
    }

    /// Ids that cannot exist (all zeros) are simply not found, and a repeated id is looked up
    /// once: both are schema-valid, so they get the 200 the spec promises for valid input,
    /// where Zipkin's server answers 400 (README, "Differences from Zipkin and Jaeger").
    private func traceMany(_ request: Request) async throws -> Response {
        guard let list = QueryParameters(request).present("traceIds") else {
            throw HTTPFailure.badRequest("parameter 'traceIds' is required: a comma-separated list of trace ids")
        }
        let parts = list.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingSpaces() }
        guard parts.count >= 2 else {
            throw HTTPFailure.badRequest("Use /api/v2/trace/{traceId} endpoint to retrieve a single trace")
        }
        var ids: [TraceID] = []
        for part in parts {
            // The spec's pattern: 16 to 32 lower-hex digits each.
            guard (16...32).contains(part.utf8.count), part.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) else {
                throw HTTPFailure.badRequest("traceIds: '\(part)' is not 16 to 32 lower-hex characters")
            }
            if let id = Self.traceID(part), !ids.contains(id) { ids.append(id) }
        }
        let traces = try await store.traces(ids: ids).filter { !$0.isEmpty }
        return .bytes(ZipkinJSON.encode(traces: traces), contentType: "application/json")
    }

    private func dependencies(_ request: Request) async throws -> Response {
        guard let window = try QueryParameters(request).zipkinWindow(requireEnd: true) else { return .json("[]") }
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
