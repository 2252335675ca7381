import DemoServices
import Foundation
import Logging
import MeshtraceTesting
import MeshtraceTracing
import Synchronization
import Testing
import TraceExport
import TraceModel

let quietLogger: Logger = {
    var logger = Logger(label: "demo-tests")
    logger.logLevel = .error
    return logger
}()

let inboundTraceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

/// Every forwardable header with a recognisable value, plus one that must not be forwarded.
let incomingTraceHeaders: [(String, String)] = [
    ("x-request-id", "req-123"),
    ("traceparent", inboundTraceparent),
    ("tracestate", "vendor=abc"),
    ("X-B3-TraceId", "4bf92f3577b34da6a3ce929d0e0e4736"),
    ("X-B3-SpanId", "00f067aa0ba902b7"),
    ("X-B3-ParentSpanId", "1111111111111111"),
    ("X-B3-Sampled", "1"),
    ("X-B3-Flags", "0"),
    ("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"),
    ("baggage", "tenant=acme"),
    ("x-not-a-trace-header", "keep-me-home"),
]

// The demo's data, written out by hand from its definition (FNV-1a 64 of the report id picks
// 3-5 records; splitmix64 rounds make the checksum), so the tests do not check the demo's code
// against itself. Worked out with a separate Python script from the FNV and splitmix64 specs.
let report7Records = [
    DemoRecord(id: "7-1", item: "sprockets", quantity: 5, priceCents: 3732),
    DemoRecord(id: "7-2", item: "panels", quantity: 9, priceCents: 9124),
    DemoRecord(id: "7-3", item: "sprockets", quantity: 4, priceCents: 6052),
    DemoRecord(id: "7-4", item: "sprockets", quantity: 1, priceCents: 7084),
    DemoRecord(id: "7-5", item: "sprockets", quantity: 1, priceCents: 3414),
]
let report8Records = [
    DemoRecord(id: "8-1", item: "widgets", quantity: 4, priceCents: 4630),
    DemoRecord(id: "8-2", item: "panels", quantity: 4, priceCents: 7233),
    DemoRecord(id: "8-3", item: "valves", quantity: 2, priceCents: 1520),
    DemoRecord(id: "8-4", item: "bolts", quantity: 5, priceCents: 9812),
]
let report42 = BackendReport(
    report: "42",
    records: [
        DemoRecord(id: "42-1", item: "panels", quantity: 3, priceCents: 6909),
        DemoRecord(id: "42-2", item: "bolts", quantity: 7, priceCents: 4844),
        DemoRecord(id: "42-3", item: "gears", quantity: 8, priceCents: 2709),
        DemoRecord(id: "42-4", item: "panels", quantity: 8, priceCents: 5949),
    ],
    totalCents: 123_899, checksum: "c4c15b7c902fcfdf", computedBy: "backend")

/// A database's answer for a stand-in server.
func databaseJSON(_ id: String, _ records: [DemoRecord] = report7Records) throws -> String {
    let body = DatabaseRecords(report: id, records: records, servedBy: "database")
    return String(decoding: try JSONEncoder().encode(body), as: UTF8.self)
}

func decode<T: Decodable>(_ type: T.Type, _ response: DemoHTTPResponse) throws -> T {
    try JSONDecoder().decode(T.self, from: Data(response.body))
}

func start(_ role: DemoRole, broken: Bool = false, upstreams: [DemoRole: String] = [:], proxy: HTTPProxy? = nil,
           tracer: MeshtraceTracer? = nil) async throws -> RunningDemoService {
    try await DemoService.start(
        DemoServiceConfiguration(role: role, broken: broken, upstreamURLs: upstreams, proxy: proxy, upstreamTimeout: .seconds(30)),
        tracer: tracer, logger: quietLogger)
}

@Suite struct DemoServicesTests {
    let client = DemoHTTPClient(timeout: .seconds(30))

    @Test func databaseServesDeterministicRecords() async throws {
        let database = try await start(.database)
        #expect(database.port > 0)
        let first = try await client.get(database.baseURL + "/records?report=7")
        #expect(first.status == 200)
        #expect(first.header("content-type") == "application/json")
        let records = try decode(DatabaseRecords.self, first)
        #expect(records.report == "7")
        #expect((3...5).contains(records.records.count))
        #expect(records.records == report7Records)
        #expect(try decode(DatabaseRecords.self, try await client.get(database.baseURL + "/records?report=7")) == records)
        #expect(try decode(DatabaseRecords.self, try await client.get(database.baseURL + "/records?report=8")).records == report8Records)

        let missing = try await client.get(database.baseURL + "/records")
        #expect(missing.status == 400)
        #expect(try decode(DemoErrorBody.self, missing).service == "database")
        let bad = try await client.get(database.baseURL + "/records?report=..%2Fetc")
        #expect(bad.status == 400)

        let health = try await client.get(database.baseURL + "/healthz")
        #expect(try decode(DemoHealth.self, health) == DemoHealth(status: "ok", service: "database"))
        await database.stop()
    }

    @Test func frontendBackendDatabaseChain() async throws {
        let database = try await start(.database)
        let backend = try await start(.backend, upstreams: [.database: database.baseURL])
        let frontend = try await start(.frontend, upstreams: [.backend: backend.baseURL + "/"])
        let page = try await client.get(frontend.baseURL + "/api/reports/42", headers: incomingTraceHeaders)
        #expect(page.status == 200, "\(page.bodyText)")
        let decoded = try decode(FrontendPage.self, page)
        #expect(decoded.page == "report")
        #expect(decoded.servedBy == "frontend")
        #expect(decoded.report.report == "42")
        #expect(decoded.report.computedBy == "backend")
        #expect(decoded.report == report42)

        let home = try await client.get(frontend.baseURL + "/?report=9")
        #expect(home.status == 200)
        #expect(try decode(FrontendPage.self, home).report.report == "9")
        #expect(try await client.get(frontend.baseURL + "/").status == 200)
        #expect(try await client.get(frontend.baseURL + "/healthz").status == 200)
        for service in [frontend, backend, database] { await service.stop() }
    }

    @Test func backendForwardsExactlyTheTraceHeaders() async throws {
        let database = try await RecordingServer(body: try databaseJSON("7"))
        let backend = try await start(.backend, upstreams: [.database: "http://127.0.0.1:\(database.port)"])
        let response = try await client.get(backend.baseURL + "/reports/7", headers: incomingTraceHeaders)
        #expect(response.status == 200, "\(response.bodyText)")
        #expect(try decode(BackendReport.self, response).records == report7Records, "the database's records, passed on")

        let sent = try #require(await database.waitForRequest())
        #expect(sent.method == "GET")
        #expect(sent.uri == "/records?report=7")
        for (name, value) in incomingTraceHeaders where name != "x-not-a-trace-header" {
            #expect(sent.header(name) == value, "header \(name)")
        }
        #expect(sent.header("x-not-a-trace-header") == nil)
        await backend.stop()
        await database.close()
    }

    @Test func frontendForwardsTraceHeadersToBackend() async throws {
        let backendStandIn = try await RecordingServer(
            body: String(decoding: try JSONEncoder().encode(report42), as: UTF8.self))
        let frontend = try await start(.frontend, upstreams: [.backend: "http://127.0.0.1:\(backendStandIn.port)"])
        #expect(try await client.get(frontend.baseURL + "/api/reports/3", headers: incomingTraceHeaders).status == 200)
        let sent = try #require(await backendStandIn.waitForRequest())
        #expect(sent.uri == "/reports/3")
        #expect(sent.header("traceparent") == inboundTraceparent)
        #expect(sent.header("x-request-id") == "req-123")
        #expect(sent.header("baggage") == "tenant=acme")
        await frontend.stop()
        await backendStandIn.close()
    }

    @Test func brokenBackendDropsTraceHeadersButStillAnswers() async throws {
        let database = try await RecordingServer(body: try databaseJSON("7"))
        let exporter = InMemorySpanExporter()
        let tracer = MeshtraceTracer(serviceName: "backend", exporter: exporter)
        let backend = try await start(.backend, broken: true, upstreams: [.database: "http://127.0.0.1:\(database.port)"], tracer: tracer)
        let response = try await client.get(backend.baseURL + "/reports/7", headers: incomingTraceHeaders)
        #expect(response.status == 200)
        let sent = try #require(await database.waitForRequest())
        for name in HeaderForwarding.headers {
            #expect(sent.header(name) == nil, "broken mode forwarded \(name)")
        }
        // The business span is still recorded, in the inbound trace.
        await tracer.flush()
        #expect(exporter.exported.map(\.name) == ["compute-report"])
        #expect(exporter.exported.first?.traceID.hex32 == "4bf92f3577b34da6a3ce929d0e0e4736")
        await backend.stop()
        await database.close()
    }

    @Test func businessSpanIsAChildOfTheInboundRequest() async throws {
        let database = try await start(.database)
        let exporter = InMemorySpanExporter()
        let tracer = MeshtraceTracer(serviceName: "backend", exporter: exporter)
        let backend = try await start(.backend, upstreams: [.database: database.baseURL], tracer: tracer)

        #expect(try await client.get(backend.baseURL + "/reports/11", headers: [("traceparent", inboundTraceparent)]).status == 200)
        // B3-only callers join too.
        #expect(try await client.get(backend.baseURL + "/reports/12", headers: [
            ("X-B3-TraceId", "80f198ee56343ba864fe8b2a57d3eff7"), ("X-B3-SpanId", "e457b5a2e4d86bd1"), ("X-B3-Sampled", "1"),
        ]).status == 200)
        // No headers: a new trace of its own.
        #expect(try await client.get(backend.baseURL + "/reports/13").status == 200)
        await tracer.flush()

        let spans = exporter.exported
        #expect(spans.count == 3)
        let w3c = try #require(spans.first { $0.attribute("report.id") == .string("11") })
        #expect(w3c.name == "compute-report")
        #expect(w3c.serviceName == "backend")
        #expect(w3c.kind == .internal)
        #expect(w3c.traceID.hex32 == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(w3c.parentSpanID?.hex == "00f067aa0ba902b7")
        #expect(w3c.attribute("report.records") == .int(5), "report 11 has five records")
        #expect(w3c.durationNanos >= 3_000_000, "the simulated work is inside the span")

        let b3 = try #require(spans.first { $0.attribute("report.id") == .string("12") })
        #expect(b3.traceID.hex == "80f198ee56343ba864fe8b2a57d3eff7")
        #expect(b3.parentSpanID?.hex == "e457b5a2e4d86bd1")

        let root = try #require(spans.first { $0.attribute("report.id") == .string("13") })
        #expect(root.parentSpanID == nil)
        #expect(root.traceID != w3c.traceID)
        await backend.stop()
        await database.stop()
    }

    @Test func upstreamFailuresBecome502JSON() async throws {
        let deadPort = try refusingPort()
        let frontend = try await start(.frontend, upstreams: [.backend: "http://127.0.0.1:\(deadPort)"])
        let refused = try await client.get(frontend.baseURL + "/api/reports/1")
        #expect(refused.status == 502)
        let refusedBody = try decode(DemoErrorBody.self, refused)
        #expect(refusedBody.service == "frontend")
        #expect(refusedBody.upstream == "backend")
        #expect(refusedBody.error.contains("cannot connect"))

        let failing = try await RecordingServer(status: 500, body: #"{"error":"disk on fire"}"#)
        let backend = try await start(.backend, upstreams: [.database: "http://127.0.0.1:\(failing.port)"])
        let answered = try await client.get(backend.baseURL + "/reports/1")
        #expect(answered.status == 502)
        let answeredBody = try decode(DemoErrorBody.self, answered)
        #expect(answeredBody.upstreamStatus == 500)
        #expect(answeredBody.error.contains("disk on fire"))

        let garbage = try await RecordingServer(body: "not json")
        let backend2 = try await start(.backend, upstreams: [.database: "http://127.0.0.1:\(garbage.port)"])
        #expect(try await client.get(backend2.baseURL + "/reports/1").status == 502)

        #expect(try await client.get(frontend.baseURL + "/api/reports/bad%20id").status == 400)
        for service in [frontend, backend, backend2] { await service.stop() }
        await failing.close()
        await garbage.close()
    }

    @Test func clientSpeaksAbsoluteFormThroughAProxy() async throws {
        let proxy = try await RecordingServer(body: #"{"ok":true}"#)
        let viaProxy = DemoHTTPClient(proxy: HTTPProxy(host: "127.0.0.1", port: proxy.port))
        let response = try await viaProxy.get("http://backend/reports/7?x=1", headers: [("traceparent", inboundTraceparent)])
        #expect(response.status == 200)
        #expect(response.bodyText == #"{"ok":true}"#)
        let sent = try #require(await proxy.waitForRequest())
        #expect(sent.uri == "http://backend/reports/7?x=1")
        #expect(sent.header("host") == "backend")
        #expect(sent.header("traceparent") == inboundTraceparent)
        _ = try await viaProxy.get("http://backend:8080/")
        #expect(proxy.recorded.last?.uri == "http://backend:8080/")
        #expect(proxy.recorded.last?.header("host") == "backend:8080")
        await proxy.close()
    }

    @Test func backendCallsDatabaseByNameThroughTheSidecar() async throws {
        let sidecar = try await RecordingServer(body: try databaseJSON("5"))
        let backend = try await start(.backend, proxy: HTTPProxy(host: "127.0.0.1", port: sidecar.port))
        let response = try await client.get(backend.baseURL + "/reports/5", headers: incomingTraceHeaders)
        #expect(response.status == 200)
        let sent = try #require(await sidecar.waitForRequest())
        #expect(sent.uri == "http://database/records?report=5")
        #expect(sent.header("host") == "database")
        #expect(sent.header("traceparent") == inboundTraceparent)
        await backend.stop()
        await sidecar.close()
    }

    @Test func configurationFromEnvironment() {
        let config = DemoServiceConfiguration.fromEnvironment(role: .frontend, port: 8080, environment: [
            "BACKEND_URL": "http://127.0.0.1:9001/", "http_proxy": "127.0.0.1:15001",
        ])
        #expect(config.baseURL(of: .backend) == "http://127.0.0.1:9001")
        #expect(config.baseURL(of: .database) == "http://database")
        #expect(config.proxy == HTTPProxy(host: "127.0.0.1", port: 15001))
        #expect(config.port == 8080)
        let upper = DemoServiceConfiguration.fromEnvironment(role: .backend, environment: [
            "HTTP_PROXY": "http://10.0.0.1:15001/", "http_proxy": "http://ignored:1", "DATABASE_URL": "http://database:7000",
        ])
        #expect(upper.proxy == HTTPProxy(host: "10.0.0.1", port: 15001))
        #expect(upper.baseURL(of: .database) == "http://database:7000")
        #expect(DemoServiceConfiguration.fromEnvironment(role: .database, environment: [:]).proxy == nil)
        #expect(HTTPProxy("") == nil)
        #expect(HTTPProxy("https://secure:443") == nil)
    }

    @Test func clientErrorsAreClear() async throws {
        await #expect(throws: DemoHTTPClientError.self) { try await client.get("https://example.com/") }
        await #expect(throws: DemoHTTPClientError.self) { try await client.get("not a url") }
        let port = try refusingPort()  // held, so no other test's listener can take it
        do {
            _ = try await DemoHTTPClient(proxy: HTTPProxy(host: "127.0.0.1", port: port)).get("http://backend/")
            Issue.record("expected a connect failure")
        } catch let error as DemoHTTPClientError {
            #expect(error.description.contains("proxy for backend"), "\(error)")
        }
    }

    @Test func trafficGeneratorCountsStatusesAtTheRequestedRate() async throws {
        let database = try await start(.database)
        let started = ContinuousClock.now
        let report = await TrafficGenerator(url: database.baseURL + "/records?report=1", requests: 10, rate: 50, concurrency: 4).run()
        let elapsed = ContinuousClock.now - started
        #expect(report.statusCounts == [200: 10])
        #expect(report.sent == 10 && report.succeeded == 10)
        // 10 requests at 50/s: the last one is due 180 ms after the first.
        #expect(elapsed >= .milliseconds(170))

        let mixed = await TrafficGenerator(url: database.baseURL + "/records", requests: 3, rate: 0).run()
        #expect(mixed.statusCounts == [400: 3])
        await database.stop()

        let deadURL = "http://127.0.0.1:\(try refusingPort())/"  // held: no other test's server can be given it
        let failed = await TrafficGenerator(url: deadURL, requests: 4, rate: 0).run()
        #expect(failed.transportErrors == 4)
        #expect(failed.lastError?.contains("cannot connect") == true)
    }

    @Test func trafficGeneratorWithoutALimitStopsWhenCancelled() async throws {
        let database = try await start(.database)
        let seen = Mutex(0)
        let run = Task {
            await TrafficGenerator(url: database.baseURL + "/healthz", requests: nil, rate: 200, concurrency: 2).run { _, _ in
                seen.withLock { $0 += 1 }
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while seen.withLock({ $0 }) < 5, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(2)) }
        run.cancel()
        let report = await run.value
        #expect(report.statusCounts[200, default: 0] >= 5)
        #expect(report.transportErrors == 0)
        await database.stop()
    }
}
