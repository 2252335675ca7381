import Foundation
import Logging
import Testing
import TraceModel
import TraceWire

@testable import Collector

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// In-process collector lifecycle: it must come up on ephemeral ports, take spans, and stop
/// when its task is cancelled (an embedding process cancels; a hang here once froze the benchmark).
@Suite struct CollectorServerTests {
    func start() async throws -> (Task<Void, any Error>, ListeningAddresses) {
        var config = CollectorConfiguration()
        config.zipkinPort = 0
        config.otlpHTTPPort = 0
        config.queryPort = 0
        config.adminPort = 0
        config.storage = .memory
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let (stream, continuation) = AsyncStream.makeStream(of: ListeningAddresses.self)
        let server = CollectorServer(configuration: config, logger: logger, onListening: { continuation.yield($0) })
        let task = Task { try await server.run() }
        for await addresses in stream { return (task, addresses) }
        throw CancellationError()
    }

    @Test(.timeLimit(.minutes(1)))
    func acceptsSpansAndStopsWhenCancelled() async throws {
        let (task, addresses) = try await start()
        #expect(addresses.zipkinPort > 0 && addresses.queryPort > 0 && addresses.zipkinPort != addresses.queryPort)

        let span = Span(traceID: TraceID(high: 0, low: 0xabc), spanID: SpanID(0x1) ?? SpanID.random(), kind: .server,
                        name: "GET /x", startTimeNanos: 1_700_000_000_000_000_000, durationNanos: 5_000, serviceName: "svc")
        let ingest = try #require(URL(string: "http://127.0.0.1:\(addresses.zipkinPort)/api/v2/spans"))
        var request = URLRequest(url: ingest)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(ZipkinJSON.encode([span]))
        let (_, response) = try await URLSession.shared.data(for: request)
        #expect((response as? HTTPURLResponse)?.statusCode == 202)

        let query = try #require(URL(string: "http://127.0.0.1:\(addresses.queryPort)/api/traces/0000000000000abc"))
        let (body, queryResponse) = try await URLSession.shared.data(from: query)
        #expect((queryResponse as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: body, as: UTF8.self).contains("\"operationName\":\"GET /x\""))

        task.cancel()
        _ = await task.result  // the time limit fails the test if this never returns
    }
}
