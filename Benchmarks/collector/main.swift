// Collector ingest and query benchmark. Run: scripts/bench-collector (release build).
// `--storage clickhouse --clickhouse-url URL` runs ClickHouse beside SQLite, in the same run.
//
// 1. Raw store: `TraceStore.write` of pre-built spans, the limit for end-to-end ingest.
// 2. End-to-end: HTTP POST to a running collector (Zipkin JSON and OTLP protobuf, 100 and 1000
//    spans per request, several connections), acknowledged only once committed. Bodies are
//    encoded before the clock starts, so we time the collector, not the load generator.
// 3. Query: get-trace and search latency (p50/p99) through the Jaeger API with N spans stored
//    (`--stored-spans 1000000,10000000`), and bytes on disk per span.
//    And OTLP/gRPC (grpc-swift's client) on the same store, and the gRPC message codec alone:
//    the hand-written decoder the receiver plugs in against GRPCProtobuf's generated messages.
import Collector
import Foundation
import Logging
import TraceModel
import TraceStorage
import TraceWire

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Prints and flushes, so progress shows as it happens even when stdout is a pipe.
func say(_ line: String) {
    print(line)
    fflush(nil)
}
let arguments = CommandLine.arguments
func argument(_ name: String, default value: Int) -> Int {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count, let v = Int(arguments[i + 1]) else { return value }
    return v
}
let ingestSpans = argument("--ingest-spans", default: 200_000)
let connections = argument("--connections", default: 4)
func stringArgument(_ name: String) -> String? {
    guard let i = arguments.firstIndex(of: name), i + 1 < arguments.count else { return nil }
    return arguments[i + 1]
}
let storedSpanCounts = (stringArgument("--stored-spans") ?? "1000000").split(separator: ",").compactMap { Int($0) }
let backends: [Backend] = {
    guard stringArgument("--storage") == "clickhouse" else { return [.sqlite] }
    guard let url = stringArgument("--clickhouse-url") else {
        print("--storage clickhouse needs --clickhouse-url (scripts/bench-collector starts a server and passes it)")
        exit(2)
    }
    // `--without-sqlite`: ClickHouse alone (its one-window search is its own peer in section 3).
    return CommandLine.arguments.contains("--without-sqlite") ? [.clickhouse(url)] : [.sqlite, .clickhouse(url)]
}()

let logger: Logger = {
    var l = Logger(label: "bench")
    l.logLevel = .warning
    return l
}()

let services = ["frontend", "backend", "database", "cart", "checkout", "payments", "shipping", "email"]
let routes = ["GET /api/items/{id}", "POST /api/cart", "GET /health/deep", "PUT /api/orders/{id}", "GET /api/search"]

/// Traces of 10 spans shaped like sidecar output: ~12 attributes each.
func makeSpans(count: Int, seed: UInt64, baseNanos: UInt64) -> [Span] {
    var rng = SplitMix64(seed: seed)
    var spans: [Span] = []
    spans.reserveCapacity(count)
    while spans.count < count {
        let traceID = TraceID.random(using: &rng)
        var parent: SpanID?
        let start = baseNanos + rng.next() % 3_600_000_000_000
        for depth in 0..<10 where spans.count < count {
            let id = SpanID.random(using: &rng)
            let service = services[Int(rng.next() % UInt64(services.count))]
            let status = rng.next() % 50 == 0 ? 503 : 200
            spans.append(Span(
                traceID: traceID, spanID: id, parentSpanID: parent, kind: depth % 2 == 0 ? .server : .client,
                name: routes[Int(rng.next() % UInt64(routes.count))],
                startTimeNanos: start + UInt64(depth) * 1_000_000, durationNanos: 1_000_000 + rng.next() % 50_000_000,
                serviceName: service,
                resource: [Attribute("host.name", .string("node-1")), Attribute("service.version", .string("1.4.2"))],
                attributes: [
                    Attribute("http.method", .string("GET")), Attribute("http.status_code", .int(Int64(status))),
                    Attribute("http.url", .string("http://\(service):8080/api/items/\(rng.next() % 100000)")),
                    Attribute("http.protocol", .string("HTTP/1.1")), Attribute("component", .string("proxy")),
                    Attribute("upstream_cluster", .string("outbound|8080||\(service)")),
                    Attribute("peer.address", .string("127.0.0.1")), Attribute("request_size", .int(0)),
                    Attribute("response_size", .int(Int64(rng.next() % 4096))), Attribute("response_flags", .string("-")),
                    Attribute("guid:x-request-id", .string(Hex.format(rng.next()) + Hex.format(rng.next()))),
                    Attribute("node_id", .string("sidecar~127.0.0.1~\(service)")),
                ],
                status: status >= 500 ? .error() : .unset,
                remoteEndpoint: Endpoint(serviceName: services[Int(rng.next() % UInt64(services.count))], ipv4: "127.0.0.1", port: 15006)
            ))
            parent = id
        }
    }
    return spans
}

func rate(_ n: Int, _ d: Duration) -> Double { Double(n) / (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) }
func ms(_ d: Duration) -> Double { Double(d.components.seconds) * 1e3 + Double(d.components.attoseconds) / 1e15 }
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)]
}
func fmt(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }

func tempDir(_ name: String) -> String {
    let path = NSTemporaryDirectory() + "meshtrace-bench-\(name)-\(getpid())"
    try? FileManager.default.removeItem(atPath: path)
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

let now = UInt64(Date().timeIntervalSince1970 * 1e9)

// MARK: 1. raw store
func rawStoreRate(_ backend: Backend, batch: Int) async throws -> Double {
    let store = try await backend.open("raw\(batch)")
    let spans = makeSpans(count: ingestSpans, seed: UInt64(batch), baseNanos: now - 3_600_000_000_000)
    let started = ContinuousClock.now
    var i = 0
    while i < spans.count {
        try await store.store.write(Array(spans[i..<min(i + batch, spans.count)]))
        i += batch
    }
    let elapsed = ContinuousClock.now - started
    try await store.close()
    return rate(spans.count, elapsed)
}

// MARK: 2. end-to-end over HTTP
/// A collector in this process; stop it with `stop(_:)`, which drains and closes it gracefully.
func startCollector(_ backend: Backend, _ opened: OpenedStore) async throws -> (RunningCollector, ListeningAddresses) {
    var config = CollectorConfiguration()
    config.zipkinPort = 0
    config.otlpHTTPPort = 0
    config.otlpGRPCPort = 0
    config.queryPort = 0
    config.adminPort = 0
    config.storage = backend.kind
    config.dataDirectory = opened.directory
    config.clickHouse = opened.clickHouse
    let (stream, continuation) = AsyncStream.makeStream(of: ListeningAddresses.self)
    let server = CollectorServer(configuration: config, logger: logger, onListening: { continuation.yield($0) })
    let task = Task { try await server.run() }
    for await addresses in stream { return (RunningCollector(server: server, task: task), addresses) }
    throw CancellationError()
}

struct RunningCollector {
    let server: CollectorServer
    let task: Task<Void, any Error>

    func stop() async {
        await server.shutdownGracefully()
        _ = await task.result
    }
}

func post(_ session: URLSession, _ url: URL, _ body: Data, contentType: String) async throws -> Int {
    var request = URLRequest(url: url)
    request.httpMethod = "POST"
    request.setValue(contentType, forHTTPHeaderField: "Content-Type")
    request.httpBody = body
    let (_, response) = try await session.data(for: request)
    return (response as? HTTPURLResponse)?.statusCode ?? 0
}

func endToEndRate(_ backend: Backend, format: String, batch: Int, connections: Int) async throws -> Double {
    let opened = try await backend.open("e2e-\(format)-\(batch)")
    try await opened.store.close()  // the collector opens its own
    let (task, addresses) = try await startCollector(backend, opened)
    let spans = makeSpans(count: ingestSpans, seed: UInt64(batch) &* 31 &+ UInt64(format.count), baseNanos: now - 3_600_000_000_000)
    var bodies: [Data] = []
    var i = 0
    while i < spans.count {
        let chunk = Array(spans[i..<min(i + batch, spans.count)])
        bodies.append(Data(format == "zipkin-json" ? ZipkinJSON.encode(chunk) : OTLPProto.encode(chunk)))
        i += batch
    }
    let url = format == "zipkin-json"
        ? URL(string: "http://127.0.0.1:\(addresses.zipkinPort)/api/v2/spans")
        : URL(string: "http://127.0.0.1:\(addresses.otlpHTTPPort)/v1/traces")
    guard let url else { throw CancellationError() }
    let contentType = format == "zipkin-json" ? "application/json" : "application/x-protobuf"
    let payloads = bodies
    let configuration = URLSessionConfiguration.ephemeral
    configuration.httpMaximumConnectionsPerHost = connections
    let session = URLSession(configuration: configuration)
    let started = ContinuousClock.now
    let failures = try await withThrowingTaskGroup(of: Int.self) { group in
        for c in 0..<connections {
            group.addTask {
                var failed = 0
                for (n, body) in payloads.enumerated() where n % connections == c {
                    var status = try await post(session, url, body, contentType: contentType)
                    while status == 503 { status = try await post(session, url, body, contentType: contentType) }
                    if status != 202 && status != 200 { failed += 1 }
                }
                return failed
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - started
    await task.stop()
    try await opened.cleanup()
    if failures > 0 { say("  warning: \(failures) requests failed") }
    return rate(spans.count, elapsed)
}

// MARK: 3. queries with N spans stored
struct QueryResults {
    var rows: [(String, Double, Double)] = []
    var bytesPerSpan: Double = 0
    var fillRate: Double = 0
}

func queryLatencies(_ backend: Backend, stored: Int) async throws -> QueryResults {
    let opened = try await backend.open("query\(stored)")
    var sampleIDs: [TraceID] = []
    let chunk = 100_000
    let writeBatch = backend.writeBatch
    var written = 0
    let fillStart = ContinuousClock.now
    var lastReport = fillStart
    while written < stored {
        let spans = makeSpans(count: min(chunk, stored - written), seed: 1000 + UInt64(written), baseNanos: now - 3_600_000_000_000)
        var i = 0
        while i < spans.count {
            try await opened.store.write(Array(spans[i..<min(i + writeBatch, spans.count)]))
            i += writeBatch
        }
        if sampleIDs.count < 1000 { sampleIDs.append(contentsOf: stride(from: 0, to: spans.count, by: 1_000).map { spans[$0].traceID }) }
        written += spans.count
        if ContinuousClock.now - lastReport > .seconds(30) || written == stored {
            lastReport = ContinuousClock.now
            say("  \(backend.label): filled \(written)/\(stored) spans (\(fmt(rate(written, ContinuousClock.now - fillStart))) spans/s)")
        }
    }
    var results = QueryResults()
    results.fillRate = rate(written, ContinuousClock.now - fillStart)
    let stats = try await opened.settledStats()
    results.bytesPerSpan = Double(stats.bytesOnDisk ?? 0) / Double(max(1, stats.spanCount))
    try await opened.store.close()
    let (task, addresses) = try await startCollector(backend, opened)
    let session = URLSession(configuration: .ephemeral)
    func timeGet(_ path: String, port: Int = addresses.queryPort) async throws -> Double {
        guard let url = URL(string: "http://127.0.0.1:\(port)\(path)") else { return .nan }
        let started = ContinuousClock.now
        let (_, response) = try await session.data(from: url)
        let elapsed = ms(ContinuousClock.now - started)
        guard (response as? HTTPURLResponse)?.statusCode == 200 else { throw CancellationError() }
        return elapsed
    }
    var getTrace: [Double] = []
    for id in sampleIDs.prefix(1000) { getTrace.append(try await timeGet("/api/traces/\(id.hex)")) }
    results.rows.append(("get trace by id", percentile(getTrace, 0.5), percentile(getTrace, 0.99)))
    let searches: [(String, String)] = [
        ("search service (limit 20)", "/api/traces?service=backend&limit=20&lookback=2h"),
        ("search service+operation", "/api/traces?service=cart&operation=POST%20/api/cart&limit=20&lookback=2h"),
        ("search service+tag", "/api/traces?service=payments&tags=%7B%22http.status_code%22%3A%22503%22%7D&limit=20&lookback=2h"),
        ("search service+minDuration", "/api/traces?service=email&minDuration=45ms&limit=20&lookback=2h"),
    ]
    for (label, path) in searches {
        var samples: [Double] = []
        for _ in 0..<100 { samples.append(try await timeGet(path)) }
        results.rows.append((label, percentile(samples, 0.5), percentile(samples, 0.99)))
    }
    await task.stop()
    // ClickHouse: the same searches again, one window each, as before ed69b1e (same run, same data).
    if var oneWindow = opened.clickHouse {
        oneWindow.narrowsSearch = false
        let (before, beforeAddresses) = try await startCollector(
            backend, OpenedStore(store: opened.store, directory: nil, clickHouse: oneWindow))
        for (label, path) in searches {
            var samples: [Double] = []
            for _ in 0..<100 { samples.append(try await timeGet(path, port: beforeAddresses.queryPort)) }
            results.rows.append((label + ", one window (before)", percentile(samples, 0.5), percentile(samples, 0.99)))
        }
        await before.stop()
    }
    try await opened.cleanup()
    return results
}

say("meshtrace collector benchmark: \(ingestSpans) spans per ingest run, \(connections) connections, stored for queries: \(storedSpanCounts)")
say("machine: \(ProcessInfo.processInfo.activeProcessorCount) cores, \(ProcessInfo.processInfo.physicalMemory >> 30) GiB, load \(loadAverage())")
say("")
say("| store | ingest path | spans/request | connections | spans/s | ratio to raw store |")
say("|---|---|---|---|---|---|")
// `--queries-only`: skip sections 1 and 2 (the store fill and the query latencies remain).
let queriesOnly = CommandLine.arguments.contains("--queries-only")
for backend in backends where !queriesOnly {
    var raw: [Int: Double] = [:]
    for batch in backend.rawBatches {
        raw[batch] = try await rawStoreRate(backend, batch: batch)
        say("| \(backend.label) | raw store write (limit) | \(batch) | 1 | \(fmt(raw[batch] ?? 0)) | 1.00 |")
    }
    let best = raw.values.max() ?? 1
    for c in backend.connectionCounts(connections) {
        for format in ["zipkin-json", "otlp-proto"] {
            for batch in [100, 1000] {
                let r = try await endToEndRate(backend, format: format, batch: batch, connections: c)
                say("| \(backend.label) | \(format) over HTTP | \(batch) | \(c) | \(fmt(r)) | \(fmt(r / best, 2)) |")
            }
        }
    }
    for batch in [100, 1000] {
        let r = try await grpcRate(backend, batch: batch)
        say("| \(backend.label) | otlp-proto over gRPC | \(batch) | \(connections) | \(fmt(r)) | \(fmt(r / best, 2)) |")
    }
}
say("")
say("| OTLP/gRPC message codec (decode only) | spans/request | spans/s |")
say("|---|---|---|")
for batch in [100, 1000] where !queriesOnly {
    let r = try codecRates(batch: batch)
    say("| hand-written decoder (plugged in) | \(batch) | \(fmt(r.hand)) |")
    say("| GRPCProtobuf generated messages + conversion | \(batch) | \(fmt(r.generated)) |")
}
for stored in storedSpanCounts {
    for backend in backends {
        say("")
        say("\(backend.label), \(stored) spans stored (HTTP, Jaeger API; load \(loadAverage())):")
        let r = try await queryLatencies(backend, stored: stored)
        say("fill rate \(fmt(r.fillRate)) spans/s (writes of \(backend.writeBatch)); \(fmt(r.bytesPerSpan, 1)) bytes on disk per span")
        say("| query | p50 ms | p99 ms |")
        say("|---|---|---|")
        for (label, p50, p99) in r.rows { say("| \(label) | \(fmt(p50, 2)) | \(fmt(p99, 2)) |") }
    }
}
