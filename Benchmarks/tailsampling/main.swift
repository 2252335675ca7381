// Tail-sampling benchmark. Run: scripts/bench-tail-sampling (release build).
//
// 1. Ingest spans/s through a running collector (OTLP/HTTP protobuf, 100 spans a request,
//    several connections, answered once committed or buffered), tail sampling off and on
//    ("errors + slow + 5% of the rest"), in the same run, on SQLite and in memory.
// 2. The state machine alone: spans/s through `TailSampler.receive` (every trace complete, so
//    decided at once) and through receive + tick (every trace waits for decision_wait).
// 3. Memory per buffered trace: RSS of this process before and after buffering N traces of
//    8 sidecar-shaped spans that are never complete (nothing decided), divided by N.
import Collector
import Foundation
import Logging
import TailSampling
import TraceModel
import TraceStorage
import TraceWire

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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
let bufferedTraces = argument("--buffered-traces", default: 50_000)
let connections = argument("--connections", default: 4)

let logger: Logger = {
    var l = Logger(label: "bench")
    l.logLevel = .warning
    return l
}()

let services = ["gateway", "frontend", "backend", "database"]
let wallNow = UInt64(Date().timeIntervalSince1970 * 1e9)

/// Mesh-shaped traces of 8 spans (gateway → frontend → backend → database: a SERVER and a
/// CLIENT per hop, the database's SERVER and its app's SERVER span last; ~12 attributes each),
/// 2% failing, 2% slow; `complete: false` leaves out the database's SERVER span, so its child
/// waits for a parent and the trace for its decision. (The first version ended in an
/// unanswered CLIENT span: "complete" traces never were, and the benchmark stopped on its own
/// precondition.)
func makeTraces(_ count: Int, seed: UInt64, complete: Bool = true) -> [Span] {
    var rng = SplitMix64(seed: seed)
    var spans: [Span] = []
    spans.reserveCapacity(count * 8)
    for n in 0..<count {
        let trace = TraceID.random(using: &rng)
        let failing = n % 50 == 25
        let slow = n % 50 == 12
        let start = wallNow - 30_000_000_000 + UInt64(n) * 1_000
        var parent: SpanID?
        for hop in 0..<8 {
            let id = SpanID.random(using: &rng)
            // Incomplete: the database's SERVER span never comes, so its child waits for a parent.
            if !complete && hop == 6 {
                parent = id
                continue
            }
            let service = services[hop / 2]
            let status = failing ? 500 : 200
            spans.append(Span(
                traceID: trace, spanID: id, parentSpanID: parent, kind: hop % 2 == 0 || hop == 7 ? .server : .client,
                name: "GET /api/reports/{id}", startTimeNanos: start + UInt64(hop) * 100_000,
                durationNanos: (slow ? 700_000_000 : 5_000_000) - UInt64(hop) * 100_000, serviceName: service,
                attributes: [
                    Attribute("http.method", .string("GET")), Attribute("http.status_code", .string(String(status))),
                    Attribute("http.url", .string("http://\(service)/api/reports/\(rng.next() % 1000)")),
                    Attribute("http.protocol", .string("HTTP/1.1")), Attribute("component", .string("proxy")),
                    Attribute("upstream_cluster", .string("outbound|80||\(service)")), Attribute("peer.address", .string("127.0.0.1")),
                    Attribute("response_size", .int(Int64(rng.next() % 4096))), Attribute("response_flags", .string("-")),
                    Attribute("guid:x-request-id", .string(Hex.format(rng.next()) + Hex.format(rng.next()))),
                    Attribute("node_id", .string("sidecar~127.0.0.1~\(service)")), Attribute("sampling.rate", .double(1)),
                ],
                status: failing ? .error() : .unset))
            parent = id
        }
    }
    return spans
}

func rate(_ n: Int, _ d: Duration) -> Double { Double(n) / (Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18) }
func fmt(_ v: Double, _ digits: Int = 0) -> String { String(format: "%.\(digits)f", v) }

func rssBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    return fields.count > 1 ? (Int(fields[1]) ?? 0) * Int(sysconf(Int32(_SC_PAGESIZE))) : 0
}

let policy = SamplingPolicyFile(configuration: .errorsSlowAndPercent(slowerThanMs: 500, percent: 5, decisionWait: .seconds(10)))

// MARK: 1. end to end
func endToEnd(storage: StorageKind, tail: Bool) async throws -> Double {
    let dir = NSTemporaryDirectory() + "meshtrace-bench-tail-\(getpid())-\(storage.rawValue)-\(tail)"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var config = CollectorConfiguration()
    config.zipkinPort = 0
    config.otlpHTTPPort = 0
    config.otlpGRPCPort = -1
    config.queryPort = 0
    config.adminPort = 0
    config.storage = storage
    config.dataDirectory = dir
    config.samplingPolicy = tail ? policy : nil
    let (stream, continuation) = AsyncStream.makeStream(of: ListeningAddresses.self)
    let server = CollectorServer(configuration: config, logger: logger, onListening: { continuation.yield($0) })
    let task = Task { try await server.run() }
    var port = 0
    for await addresses in stream {
        port = addresses.otlpHTTPPort
        break
    }
    let spans = makeTraces(ingestSpans / 8, seed: tail ? 1 : 2)
    var bodies: [Data] = []
    var i = 0
    while i < spans.count {
        bodies.append(Data(OTLPProto.encode(Array(spans[i..<min(i + 96, spans.count)]))))  // 12 whole traces a request
        i += 96
    }
    guard let url = URL(string: "http://127.0.0.1:\(port)/v1/traces") else { throw CancellationError() }
    let session = URLSession(configuration: .ephemeral)
    let payloads = bodies
    let started = ContinuousClock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for c in 0..<connections {
            group.addTask {
                for (n, body) in payloads.enumerated() where n % connections == c {
                    var request = URLRequest(url: url)
                    request.httpMethod = "POST"
                    request.setValue("application/x-protobuf", forHTTPHeaderField: "Content-Type")
                    request.httpBody = body
                    while true {
                        let (_, response) = try await session.data(for: request)
                        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
                        if status == 503 { continue }
                        guard status == 200 else { throw URLError(.badServerResponse) }
                        break
                    }
                }
            }
        }
        try await group.waitForAll()
    }
    let elapsed = ContinuousClock.now - started
    await server.shutdownGracefully()
    _ = await task.result
    return rate(spans.count, elapsed)
}

// MARK: 2. the state machine alone
func machine(complete: Bool) throws -> Double {
    var configuration = policy.configuration
    configuration.numTraces = 1_000_000
    var sampler = try TailSampler<ContinuousClock.Instant>(configuration: configuration)
    let spans = makeTraces(ingestSpans / 8, seed: 3, complete: complete)
    let batches = stride(from: 0, to: spans.count, by: 96).map { Array(spans[$0..<min($0 + 96, spans.count)]) }
    let base = ContinuousClock.now
    var decided = 0
    let started = ContinuousClock.now
    for batch in batches { decided += sampler.receive(batch, now: base).decided.count }
    decided += sampler.tick(now: base.advanced(by: .seconds(11))).decided.count
    let elapsed = ContinuousClock.now - started
    precondition(decided == spans.count / (complete ? 8 : 7), "every trace decided")
    return rate(spans.count, elapsed)
}

// MARK: 3. memory per buffered trace
func memoryPerTrace() throws -> (perTrace: Double, perSpan: Double) {
    var configuration = policy.configuration
    configuration.numTraces = bufferedTraces * 2
    configuration.maxBufferedSpans = bufferedTraces * 16
    var sampler = try TailSampler<ContinuousClock.Instant>(configuration: configuration)
    // Measured from before the spans exist: afterwards they live only in the buffer.
    let before = rssBytes()
    var spans: [Span]? = makeTraces(bufferedTraces, seed: 4, complete: false)
    let count = spans?.count ?? 0
    let now = ContinuousClock.now
    if let all = spans {
        for start in stride(from: 0, to: all.count, by: 70) { _ = sampler.receive(Array(all[start..<min(start + 70, all.count)]), now: now) }
    }
    spans = nil  // the generator's array; the buffer holds its own copies of the spans
    let after = rssBytes()
    precondition(sampler.bufferedTraces == bufferedTraces)
    return (Double(after - before) / Double(bufferedTraces), Double(after - before) / Double(count))
}

say("| what | spans/s | tail on / off |")
say("|---|---|---|")
for storage in [StorageKind.sqlite, .memory] {
    let off = try await endToEnd(storage: storage, tail: false)
    let on = try await endToEnd(storage: storage, tail: true)
    say("| ingest, OTLP/HTTP, \(storage.rawValue) store, tail sampling off | \(fmt(off)) | |")
    say("| ingest, OTLP/HTTP, \(storage.rawValue) store, tail sampling on (errors + slow + 5%) | \(fmt(on)) | \(fmt(on / off, 2)) |")
}
say("| TailSampler.receive, complete traces (decided on arrival) | \(fmt(try machine(complete: true))) | |")
say("| TailSampler.receive + tick, incomplete traces (decided at decision_wait) | \(fmt(try machine(complete: false))) | |")
let memory = try memoryPerTrace()
say("")
say("memory per buffered trace (\(bufferedTraces) traces of 7 spans, ~12 attributes each): \(fmt(memory.perTrace)) bytes/trace, \(fmt(memory.perSpan)) bytes/span")
