import Foundation
import Hummingbird
import Logging
import MeshtraceTracing
import NIOCore
import ServiceLifecycle
import Tracing

/// The demo mesh's services. They use no tracing library to propagate context: each one copies
/// the trace headers from its incoming request onto its outgoing call (`HeaderForwarding`),
/// exactly what an application behind Istio must do. The backend also records one business
/// span ("compute-report") through swift-distributed-tracing, joined to the sidecars' trace.
public enum DemoService {
    /// Runs one service until SIGTERM/SIGINT, as `meshtrace demo-service` does: upstreams and
    /// the proxy come from the environment (`<ROLE>_URL`, `HTTP_PROXY`); the backend exports
    /// its business span to `collector`, else `$MESHTRACE_COLLECTOR`.
    public static func run(
        role: DemoRole, port: Int, host: String = "127.0.0.1", broken: Bool = false, recordsCausality: Bool = false,
        serviceName: String? = nil, collector: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment, logger: Logger
    ) async throws {
        let configuration = DemoServiceConfiguration.fromEnvironment(
            role: role, host: host, port: port, broken: broken, recordsCausality: recordsCausality, environment: environment)
        var tracer: MeshtraceTracer?
        if role == .backend {
            tracer = try MeshtraceTracing.makeTracer(
                serviceName: serviceName ?? role.rawValue, collector: collector, environment: environment, logger: logger)
        }
        let app = makeApplication(configuration, tracer: tracer, logger: logger)
        do {
            try await app.runService()
        } catch {
            await tracer?.shutdown()
            throw error
        }
        // Export the last business spans before the process exits.
        await tracer?.shutdown()
    }

    /// Starts a service in this process (tests, an in-process runner) and returns once it
    /// listens. `stop()` it when done.
    public static func start(_ configuration: DemoServiceConfiguration, tracer: MeshtraceTracer? = nil, logger: Logger) async throws -> RunningDemoService {
        let (events, continuation) = AsyncStream<Result<Int, any Error>>.makeStream()
        let app = makeApplication(configuration, tracer: tracer, logger: logger, onListening: { port in continuation.yield(.success(port)) })
        // A ServiceGroup of our own, so `stop()` can shut down gracefully: cancelling a
        // Hummingbird server while a connection is being accepted trips a NIO precondition.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [app], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            do {
                try await group.run()
            } catch {
                continuation.yield(.failure(error))
                throw error
            }
        }
        for await event in events {
            switch event {
            case .success(let port):
                return RunningDemoService(role: configuration.role, host: configuration.host, port: port, group: group, task: task)
            case .failure(let error):
                throw error
            }
        }
        throw DemoServiceError(description: "demo service \(configuration.role.rawValue) stopped before it was listening")
    }

    /// The Hummingbird application for `configuration.role`. `tracer` is used by the backend for
    /// its business span; without one the work is done untraced.
    public static func makeApplication(
        _ configuration: DemoServiceConfiguration, tracer: MeshtraceTracer?, logger: Logger,
        onListening: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        let handlers = Handlers(configuration: configuration, tracer: tracer, logger: logger)
        handlers.register(on: router)
        let role = configuration.role
        let host = configuration.host
        return Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: configuration.port), serverName: "demo-\(role.rawValue)"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? configuration.port
                var upstream = ""
                if let next = role.upstream {
                    upstream = "; calls \(next.rawValue) at \(configuration.baseURL(of: next))"
                    if let proxy = configuration.proxy { upstream += " via proxy \(proxy)" }
                    if configuration.broken && role == .backend { upstream += " WITHOUT forwarding trace headers (broken)" }
                }
                logger.info("demo service \(role.rawValue) listening on http://\(host):\(port)\(upstream)")
                await onListening(port)
            },
            logger: logger
        )
    }
}

public struct DemoServiceError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// A service started with `DemoService.start`.
public final class RunningDemoService: Sendable {
    public let role: DemoRole
    public let host: String
    public let port: Int
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(role: DemoRole, host: String, port: Int, group: ServiceGroup, task: Task<Void, any Error>) {
        self.role = role
        self.host = host
        self.port = port
        self.group = group
        self.task = task
    }

    public var baseURL: String { "http://\(host):\(port)" }

    /// Stops listening, lets in-flight requests finish, and waits for the server to exit.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = await task.result
    }
}

/// Reads request headers for `MeshtraceTracer.extract`.
struct HTTPFieldsExtractor: Extractor {
    func extract(key: String, from carrier: HTTPFields) -> String? {
        HeaderForwarding.value(of: key, in: carrier)
    }
}

/// Route handlers; one value per application, shared by concurrent requests (all immutable).
struct Handlers: Sendable {
    let configuration: DemoServiceConfiguration
    let tracer: MeshtraceTracer?
    let logger: Logger
    let client: DemoHTTPClient

    init(configuration: DemoServiceConfiguration, tracer: MeshtraceTracer?, logger: Logger) {
        self.configuration = configuration
        self.tracer = tracer
        self.logger = logger
        self.client = DemoHTTPClient(proxy: configuration.proxy, timeout: configuration.upstreamTimeout)
    }

    var name: String { configuration.role.rawValue }

    /// How long the backend's report computation takes on top of its CPU work.
    static let simulatedWork: Duration = .milliseconds(3)

    func register(on router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in json(DemoHealth(status: "ok", service: name)) }
        switch configuration.role {
        case .database:
            router.get("/records") { request, _ in records(request) }
        case .backend:
            router.get("/reports/:id") { request, context in await report(request, id: context.parameters.get("id")) }
        case .frontend:
            router.get("/") { request, _ in
                // A report the caller names, else one of twenty, so traffic varies a little.
                let id = request.uri.queryParameters.get("report") ?? String(Int.random(in: 1...20))
                return await page("home", request, id: id)
            }
            router.get("/api/reports/:id") { request, context in await page("report", request, id: context.parameters.get("id")) }
        }
    }

    // MARK: database

    func records(_ request: Request) -> Response {
        guard let id = Self.validID(request.uri.queryParameters.get("report")) else {
            return fail(.badRequest, "query parameter 'report' must be 1-64 letters, digits, '-' or '_'")
        }
        return json(DatabaseRecords(report: id, records: DemoData.records(forReport: id), servedBy: name))
    }

    // MARK: backend

    func report(_ request: Request, id rawID: String?) async -> Response {
        guard let id = Self.validID(rawID) else { return fail(.badRequest, "report id must be 1-64 letters, digits, '-' or '_'") }

        // Forward the trace headers to the database… unless this is the broken demo, which
        // shows what a trace looks like when one service forgets.
        var forward = configuration.broken ? [] : HeaderForwarding.forwarded(from: request.headers)
        if configuration.broken, configuration.recordsCausality, let cause = HeaderForwarding.value(of: "x-request-id", in: request.headers) {
            // Bookkeeping for measuring parent inference, not propagation: which request this call serves.
            forward.append((DemoCausality.header, cause))
        }
        let fetched: DatabaseRecords
        switch await call(.database, path: "/records?report=\(id)", headers: forward, as: DatabaseRecords.self) {
        case .success(let value): fetched = value
        case .failure(let failure): return failure.response
        }

        // The business span: parented on the caller's context (the backend sidecar's inbound
        // span, read from the same headers), so it lands in the sidecars' trace.
        guard let tracer else {
            try? await Task.sleep(for: Handlers.simulatedWork)
            return json(DemoData.compute(report: id, records: fetched.records))
        }
        var parent = InstrumentationContext.topLevel
        tracer.extract(request.headers, into: &parent, using: HTTPFieldsExtractor())
        let computed = await tracer.withSpan("compute-report", context: parent, ofKind: .internal) { span in
            // Simulated latency (say, a pricing lookup) so the span is visible in the waterfall
            // without burning the CPU that the mesh's other processes share.
            try? await Task.sleep(for: Handlers.simulatedWork)
            let result = DemoData.compute(report: id, records: fetched.records)
            span.attributes["report.id"] = id
            span.attributes["report.records"] = result.records.count
            span.attributes["report.total_cents"] = result.totalCents
            return result
        }
        return json(computed)
    }

    // MARK: frontend

    func page(_ page: String, _ request: Request, id rawID: String?) async -> Response {
        guard let id = Self.validID(rawID) else { return fail(.badRequest, "report id must be 1-64 letters, digits, '-' or '_'") }
        let forward = HeaderForwarding.forwarded(from: request.headers)
        switch await call(.backend, path: "/reports/\(id)", headers: forward, as: BackendReport.self) {
        case .success(let report): return json(FrontendPage(page: page, report: report, servedBy: name))
        case .failure(let failure): return failure.response
        }
    }

    // MARK: helpers

    /// GETs `path` on `upstream` and decodes the JSON; any failure becomes the 502 to return.
    func call<T: Decodable>(_ upstream: DemoRole, path: String, headers: [(String, String)], as: T.Type) async -> Result<T, UpstreamFailure> {
        let url = configuration.baseURL(of: upstream) + path
        let response: DemoHTTPResponse
        do {
            response = try await client.get(url, headers: headers)
        } catch {
            logger.warning("upstream call failed", metadata: ["service": "\(name)", "upstream": "\(upstream.rawValue)", "error": "\(error)"])
            return .failure(UpstreamFailure(fail(.badGateway, "\(error)", upstream: upstream)))
        }
        guard (200..<300).contains(response.status) else {
            logger.warning("upstream answered an error", metadata: ["upstream": "\(upstream.rawValue)", "status": "\(response.status)"])
            return .failure(UpstreamFailure(fail(
                .badGateway, "\(upstream.rawValue) answered \(response.status): \(response.bodyText.prefix(200))",
                upstream: upstream, upstreamStatus: response.status)))
        }
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(response.body)))
        } catch {
            return .failure(UpstreamFailure(fail(.badGateway, "\(upstream.rawValue) sent JSON we cannot read: \(error)", upstream: upstream, upstreamStatus: response.status)))
        }
    }

    func fail(_ status: HTTPResponse.Status, _ message: String, upstream: DemoRole? = nil, upstreamStatus: Int? = nil) -> Response {
        json(DemoErrorBody(error: message, service: name, upstream: upstream?.rawValue, upstreamStatus: upstreamStatus), status: status)
    }

    /// Ids are pasted into upstream URLs, so only a safe alphabet gets through.
    static func validID(_ raw: String?) -> String? {
        guard let raw, (1...64).contains(raw.utf8.count),
              raw.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) || $0 == 0x2D || $0 == 0x5F })
        else { return nil }
        return raw
    }
}

/// A ready-made error response (Result needs an Error type).
struct UpstreamFailure: Error, @unchecked Sendable {
    // Response holds a non-Sendable body writer type-erasure; it is built and consumed on one task.
    let response: Response
    init(_ response: Response) { self.response = response }
}

func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let data = (try? encoder.encode(value)) ?? Data(#"{"error":"response encoding failed"}"#.utf8)
    return Response(status: status, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}
