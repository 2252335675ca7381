import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TraceModel
import TraceStorage

@testable import Collector

/// The UI's `/api/meshtrace/*` views through the router, in process (HummingbirdTesting): each
/// route is registered where the collector registers it, answers JSON, and says which parameter
/// is wrong with the right status in Jaeger's error envelope.
@Suite struct QueryRoutesTests {
    /// The mesh of `SpanFixtures` at 50 % sampling, and two traces of the compare tests' shape.
    static func app() async throws -> some ApplicationProtocol {
        let store = InMemoryTraceStore()
        try await store.write(mesh(rate: 0.5))
        try await store.write([
            sp(100, 1, kind: .server, service: "gateway", name: "GET /api"),
            sp(100, 2, parent: 1, kind: .client, service: "gateway", peer: "backend", name: "GET /rows"),
            sp(100, 3, parent: 2, kind: .server, service: "backend", name: "GET /rows"),
            sp(101, 1, kind: .server, service: "gateway", durationMs: 30, name: "GET /api"),
        ])
        let router = Router()
        GraphAPI(store: store).register(on: router)
        MonitorAPI(store: store).register(on: router)
        CompareAPI(store: store).register(on: router)
        return Application(router: router)
    }

    /// Window end just after the fixtures (they start at `t0` and last 2 s).
    static let end = (t0 + 30_000 * ms) / ms

    static func get(_ client: some TestClientProtocol, _ uri: String) async throws -> (status: Int, json: [String: Any]) {
        try await client.execute(uri: uri, method: .get) { response in
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true, "\(uri)")
            let object = try JSONSerialization.jsonObject(with: Data(buffer: response.body))
            return (Int(response.status.code), object as? [String: Any] ?? [:])
        }
    }

    /// The first error's message of Jaeger's envelope.
    static func message(_ json: [String: Any]) -> String {
        ((json["errors"] as? [[String: Any]])?.first?["msg"] as? String) ?? "no error in \(json)"
    }

    @Test func everyViewAnswersJSON() async throws {
        try await Self.app().test(.router) { client in
            let window = "lookback=1m&endTs=\(Self.end)"
            let monitor = try await Self.get(client, "/api/meshtrace/monitor?\(window)&service=payments&points=6")
            #expect(monitor.status == 200)
            let services = (monitor.json["services"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(services?.contains("payments") == true)
            #expect((monitor.json["operations"] as? [Any])?.count == 1)

            let series = try await Self.get(client, "/api/meshtrace/graph/series?\(window)&node=payments&points=6")
            #expect(series.status == 200)
            let operations = try await Self.get(client, "/api/meshtrace/graph/operations?\(window)")
            #expect(operations.status == 200 && ((operations.json["nodes"] as? [Any])?.count ?? 0) >= 4)

            let compare = try await Self.get(client, "/api/meshtrace/compare?a=\(TraceID(high: 0, low: 100).hex)&b=65")
            #expect(compare.status == 200)
            let summary = compare.json["summary"] as? [String: Any]
            #expect(summary?["onlyA"] as? Int == 2 && summary?["both"] as? Int == 1, "\(compare.json)")
        }
    }

    @Test func badParametersAreNamedWithTheirStatus() async throws {
        try await Self.app().test(.router) { client in
            for (uri, status, words) in [
                ("/api/meshtrace/monitor?spanKind=sideways", 400, "spanKind"),
                ("/api/meshtrace/monitor?lookback=48h", 400, "lookback"),
                ("/api/meshtrace/graph/series?lookback=5m", 400, "node"),
                ("/api/meshtrace/graph/series?node=a&points=100000", 400, "points"),
                ("/api/meshtrace/graph/operations?service=payments", 400, "operation"),
                ("/api/meshtrace/compare?a=1", 400, "'b'"),
                ("/api/meshtrace/compare?a=1&b=zz", 400, "'b'"),
                ("/api/meshtrace/compare?a=1&b=777", 404, "trace 777"),
                ("/api/meshtrace/compare/typical/nothex", 400, "trace"),
            ] {
                let answer = try await Self.get(client, uri)
                #expect(answer.status == status, "\(uri): \(answer.json)")
                #expect(Self.message(answer.json).contains(words), "\(uri): \(Self.message(answer.json))")
            }
        }
    }
}
