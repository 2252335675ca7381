import Logging
import Synchronization
import Testing
import TraceModel

@testable import SidecarProxy
@testable import TraceExport

/// Scripted exporter: answers from a list, then succeeds; remembers what it got.
final class ScriptedExporter: SpanExporter {
    private let state: Mutex<(script: [ExportOutcome], batches: [[Span]])>
    let format: SpanWireFormat
    init(_ script: [ExportOutcome] = [], format: SpanWireFormat = .zipkinJSON) {
        state = Mutex((script, []))
        self.format = format
    }
    func export(_ batch: EncodedSpanBatch) async -> ExportOutcome {
        let spans = (try? batch.decode()) ?? []
        return state.withLock { s in
            s.batches.append(spans)
            return s.script.isEmpty ? .exported : s.script.removeFirst()
        }
    }
    var batches: [[Span]] { state.withLock { $0.batches } }
}

/// Holds its first export until `open()`, then answers it 503 (retry after 50 ms); later
/// exports succeed at once.
final class GatedExporter: SpanExporter {
    private let state = Mutex<(batches: [[Span]], opened: Bool, waiting: CheckedContinuation<Void, Never>?)>(([], false, nil))
    var format: SpanWireFormat { .zipkinJSON }

    func export(_ batch: EncodedSpanBatch) async -> ExportOutcome {
        let spans = (try? batch.decode()) ?? []
        let first = state.withLock { s in
            s.batches.append(spans)
            return s.batches.count == 1
        }
        guard first else { return .exported }
        await withCheckedContinuation { continuation in
            let go = state.withLock { s in
                if !s.opened { s.waiting = continuation }
                return s.opened
            }
            if go { continuation.resume() }
        }
        return .retryable(reason: "503", retryAfter: 0.05)
    }

    func open() {
        state.withLock { s in
            s.opened = true
            defer { s.waiting = nil }
            return s.waiting
        }?.resume()
    }

    var batches: [[Span]] { state.withLock { $0.batches } }
}

func sampleSpan(_ n: UInt64) -> Span {
    Span(traceID: TraceID(high: 0, low: n + 1), spanID: SpanID(n + 1) ?? SpanID.random(), name: "s\(n)", startTimeNanos: n, durationNanos: 1, serviceName: "svc")
}

func waitUntil(timeout: Duration = .seconds(120), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}

@Suite struct SpanBatcherTests {
    let logger = Logger(label: "test")

    @Test func dropsAndCountsWhenFull() {
        let dropped = Mutex(0)
        let batcher = SpanBatcher(exporter: ScriptedExporter(), capacity: 3, maxBatch: 10, flushInterval: .seconds(60), logger: logger,
                                  onDropped: { n in dropped.withLock { $0 += n } })
        #expect((0..<5).map { batcher.add(sampleSpan(UInt64($0))) } == [true, true, true, false, false])
        #expect(batcher.queued == 3)
        #expect(batcher.dropped == 2)
        #expect(dropped.withLock { $0 } == 2)
    }

    @Test func exportsFullBatchesWithoutWaitingForTheInterval() async {
        let exporter = ScriptedExporter()
        let batcher = SpanBatcher(exporter: exporter, capacity: 100, maxBatch: 4, flushInterval: .seconds(3600), logger: logger)
        let task = Task { await batcher.run() }
        for i in 0..<8 { batcher.add(sampleSpan(UInt64(i))) }
        #expect(await waitUntil { exporter.batches.count == 2 })
        task.cancel()
        #expect(exporter.batches.map(\.count) == [4, 4])
    }

    // The retry budgets below are far longer than the retries need: under stress a 10 ms sleep
    // once took over 30 s to resume, and a budget spent that way dropped the batch.
    @Test func retriesRetryableFailuresAndDropsRejectedBatches() async {
        let exported = Mutex(0)
        let exporter = ScriptedExporter([.retryable(reason: "503", retryAfter: 0.01), .retryable(reason: "refused", retryAfter: nil)])
        let batcher = SpanBatcher(exporter: exporter, capacity: 100, maxBatch: 2, flushInterval: .seconds(3600), logger: logger,
                                  onExported: { n in exported.withLock { $0 += n } })
        await batcher.exportWithRetry(EncodedSpanBatch(format: .zipkinJSON, spans: [sampleSpan(1), sampleSpan(2)]), until: .now + .seconds(600))
        #expect(exporter.batches.count == 3, "two retryable failures, then success")
        #expect(exported.withLock { $0 } == 2)

        let rejecting = ScriptedExporter([.rejected(reason: "400")])
        let second = SpanBatcher(exporter: rejecting, capacity: 100, maxBatch: 2, flushInterval: .seconds(3600), logger: logger)
        await second.exportWithRetry(EncodedSpanBatch(format: .zipkinJSON, spans: [sampleSpan(1)]), until: .now + .seconds(600))
        #expect(rejecting.batches.count == 1, "a permanent rejection is not retried")
        #expect(second.dropped == 1)
    }

    /// A collector that is down for a while (restarting, a stalled disk) loses nothing as long
    /// as it comes back within the retry budget, however many attempts that takes.
    @Test func keepsRetryingWithinTheBudgetAndDropsOnceItIsSpent() async {
        let exporter = ScriptedExporter(Array(repeating: .retryable(reason: "refused", retryAfter: 0.001), count: 12))
        let batcher = SpanBatcher(exporter: exporter, capacity: 100, maxBatch: 2, flushInterval: .seconds(3600), logger: logger)
        let end = await batcher.exportWithRetry(EncodedSpanBatch(format: .zipkinJSON, spans: [sampleSpan(1)]), until: .now + .seconds(600))
        #expect(end == .exported)
        #expect(exporter.batches.count == 13, "twelve failures, then success")
        #expect(batcher.dropped == 0)

        let down = ScriptedExporter(Array(repeating: .retryable(reason: "refused", retryAfter: 0.02), count: 1000))
        let giving = SpanBatcher(exporter: down, capacity: 100, maxBatch: 2, flushInterval: .seconds(3600), logger: logger)
        let gaveUp = await giving.exportWithRetry(EncodedSpanBatch(format: .zipkinJSON, spans: [sampleSpan(1), sampleSpan(2)]), until: .now + .milliseconds(200))
        #expect(gaveUp == .dropped)
        #expect(giving.dropped == 2)
        // Each wait is at least the 20 ms asked for: a 200 ms budget holds at most 11 attempts,
        // however slowly the machine runs them.
        #expect(down.batches.count >= 1 && down.batches.count <= 11, "gives up at the budget, not after the script: \(down.batches.count)")
    }

    /// Stopping while a batch waits between retries hands it back, so the shutdown flush sends it.
    /// The first export answers 503 only after the test has stopped the loop, so the batch is
    /// always mid-retry when the stop comes, however the machine schedules the two.
    @Test func aBatchInterruptedByShutdownIsFlushedNotDropped() async {
        let exporter = GatedExporter()
        let batcher = SpanBatcher(exporter: exporter, capacity: 100, maxBatch: 2, flushInterval: .seconds(3600), logger: logger)
        batcher.add(sampleSpan(1))
        batcher.add(sampleSpan(2))
        let task = Task { await batcher.run() }
        #expect(await waitUntil { exporter.batches.count == 1 }, "the first attempt is in flight")
        task.cancel()
        exporter.open()
        await task.value
        #expect(batcher.queued == 2, "the batch went back to the queue")
        await batcher.flush()
        #expect(batcher.queued == 0)
        #expect(batcher.dropped == 0)
        #expect(exporter.batches.last?.map(\.name) == ["s1", "s2"])
    }

    @Test func flushExportsEverythingBuffered() async {
        let exporter = ScriptedExporter()
        let batcher = SpanBatcher(exporter: exporter, capacity: 100, maxBatch: 3, flushInterval: .seconds(3600), logger: logger)
        for i in 0..<7 { batcher.add(sampleSpan(UInt64(i))) }
        await batcher.flush()
        #expect(exporter.batches.map(\.count) == [3, 3, 1])
        #expect(exporter.batches.joined().map(\.name) == (0..<7).map { "s\($0)" }, "every span, in order")
        #expect(batcher.queued == 0)
    }

    /// Both wire formats frame a batch that decodes to exactly the spans put in, in order.
    @Test(arguments: SpanWireFormat.allCases)
    func batchesDecodeToTheSpansAdded(format: SpanWireFormat) async {
        let exporter = ScriptedExporter(format: format)
        let batcher = SpanBatcher(exporter: exporter, capacity: 100, maxBatch: 4, flushInterval: .seconds(3600), logger: logger)
        var spans = (0..<9).map { sampleSpan(UInt64($0)) }
        spans[3].attributes = [Attribute("http.status_code", .int(503)), Attribute("quote", .string("a\"b\\c\n"))]
        spans[5].serviceName = "other"
        for span in spans { batcher.add(span) }
        #expect(batcher.fullBatches == 2)
        await batcher.flush()
        #expect(exporter.batches.map(\.count) == [4, 4, 1])
        let received = Array(exporter.batches.joined())
        #expect(received.map(\.spanID) == spans.map(\.spanID))
        #expect(received.map(\.serviceName) == spans.map(\.serviceName))
        #expect(received[3].attribute("quote") == .string("a\"b\\c\n"))
        #expect(batcher.queued == 0)
    }

    @Test func anEmptyBatchIsStillAValidBody() throws {
        for format in SpanWireFormat.allCases {
            var batch = EncodedSpanBatch(format: format)
            batch.close()
            #expect(try batch.decode().isEmpty)
        }
    }
}

@Suite struct IstioMetricsTests {
    @Test func emitsIstioLabelsAndCountsPerLabelSet() {
        let metrics = IstioMetrics(workload: "frontend", namespace: "default")
        let context = TraceContext(traceID: TraceID(high: 0, low: 1), spanID: SpanID(2) ?? SpanID.random())
        let ok = HopRecord(direction: .outbound, context: context, sampled: true, startNanos: 0, durationNanos: 3_000_000,
                           method: "GET", path: "/", authority: "backend", statusCode: 200, requestID: "r", destinationService: "backend")
        var failed = ok
        failed.statusCode = 503
        failed.responseFlags = ["UF"]
        // ok, ok, failed, ok: the last-used handles, a switch, then the earlier set found again.
        metrics.record(ok)
        metrics.record(ok)
        metrics.record(failed)
        metrics.record(ok)
        let text = metrics.prometheusText()
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("istio_requests_total{") }
        #expect(lines.count == 2)
        let okLine = lines.first { $0.contains("response_code=\"200\"") }
        #expect(okLine?.hasSuffix(" 3") == true)
        #expect(okLine?.contains("reporter=\"source\"") == true)
        #expect(okLine?.contains("source_workload=\"frontend\"") == true)
        #expect(okLine?.contains("destination_service_name=\"backend\"") == true)
        #expect(okLine?.contains("response_flags=\"-\"") == true)
        #expect(lines.contains { $0.contains("response_flags=\"UF\"") && $0.hasSuffix(" 1") })
        #expect(text.contains("istio_request_duration_milliseconds_bucket{"))
        #expect(text.contains("le=\"5.0\"") || text.contains("le=\"5\""))
    }
}

@Suite struct IstioTCPMetricsTests {
    /// A CONNECT tunnel counts as Istio counts TCP: opened when it opens, closed with the bytes
    /// each way when it ends; its CONNECT request still counts in istio_requests_total.
    @Test func tunnelsCountTCPConnectionsAndBytes() {
        let metrics = IstioMetrics(workload: "shop", namespace: "default")
        var tunnel = Self.tunnel(to: "api.example.com", port: 443)
        metrics.tunnelOpened(tunnel)
        metrics.tunnelOpened(tunnel)
        var text = metrics.prometheusText()
        #expect(Self.value(text, "istio_tcp_connections_opened_total") == 2)
        #expect(Self.value(text, "istio_tcp_connections_closed_total") == 0, "nothing closed yet")
        tunnel.requestBytes = 517
        tunnel.responseBytes = 4_096
        metrics.record(tunnel)
        text = metrics.prometheusText()
        #expect(Self.value(text, "istio_tcp_connections_closed_total") == 1)
        #expect(Self.value(text, "istio_tcp_received_bytes_total") == 517)
        #expect(Self.value(text, "istio_tcp_sent_bytes_total") == 4_096)
        let opened = text.split(separator: "\n").first { $0.hasPrefix("istio_tcp_connections_opened_total{") }
        #expect(opened?.contains("request_protocol=\"tcp\"") == true)
        #expect(opened?.contains("destination_service_name=\"api.example.com\"") == true)
        #expect(opened?.contains("response_code") == false, "TCP series have no response code")
        #expect(Self.value(text, "istio_requests_total") == 1)
        // A refused CONNECT is a request, not a TCP connection.
        var refused = tunnel
        refused.isTunnel = false
        refused.statusCode = 503
        metrics.record(refused)
        #expect(Self.value(metrics.prometheusText(), "istio_tcp_connections_closed_total") == 1)
    }

    /// Periodic reports while a tunnel is open, then the closing record: each byte counted once.
    @Test func periodicTunnelReportsAndTheCloseCountEachByteOnce() {
        let metrics = IstioMetrics(workload: "shop", namespace: "default")
        var tunnel = Self.tunnel(to: "db", port: 5432)
        metrics.tunnelOpened(tunnel)
        metrics.tunnelProgress(tunnel, sent: 300, received: 100)
        var text = metrics.prometheusText()
        #expect(Self.value(text, "istio_tcp_sent_bytes_total") == 300, "traffic shows while the tunnel is open")
        #expect(Self.value(text, "istio_tcp_received_bytes_total") == 100)
        metrics.tunnelProgress(tunnel, sent: 200, received: 0)
        tunnel.tunnelBytesReported = (request: 100, response: 500)
        tunnel.requestBytes = 150
        tunnel.responseBytes = 520
        metrics.record(tunnel)
        text = metrics.prometheusText()
        #expect(Self.value(text, "istio_tcp_sent_bytes_total") == 520)
        #expect(Self.value(text, "istio_tcp_received_bytes_total") == 150)
        #expect(Self.value(text, "istio_tcp_connections_closed_total") == 1)
    }

    /// An established CONNECT tunnel's hop, before any bytes.
    static func tunnel(to host: String, port: Int) -> HopRecord {
        let context = TraceContext(traceID: TraceID(high: 0, low: 1), spanID: SpanID(2) ?? SpanID.random())
        var tunnel = HopRecord(direction: .outbound, context: context, sampled: true, startNanos: 0, durationNanos: 9_000_000,
                               method: "CONNECT", path: "\(host):\(port)", authority: "", statusCode: 200, requestID: "r",
                               destinationService: host)
        tunnel.isTunnel = true
        return tunnel
    }

    /// The sum over a metric's series, nil when it has none.
    static func value(_ text: String, _ metric: String) -> Int? {
        let lines = text.split(separator: "\n").filter { $0.hasPrefix(metric + "{") }
        guard !lines.isEmpty else { return nil }
        return lines.reduce(0) { $0 + (Int(Double($1.split(separator: " ").last ?? "") ?? -1_000_000)) }
    }
}

/// Sampled hops are encoded by the export task, not on the request path: `record` only queues
/// them (bounded, drops counted), and the batcher's loop or a flush turns them into spans.
@Suite struct SidecarTelemetryDeferredEncodingTests {
    static func hop(_ n: UInt64) -> HopRecord {
        let context = TraceContext(traceID: TraceID(high: 0, low: n + 1), spanID: SpanID(n + 1) ?? SpanID.random())
        return HopRecord(direction: .inbound, context: context, sampled: true, startNanos: 1_000 * n, durationNanos: 3_000_000,
                         method: "GET", path: "/items/\(n)", authority: "backend", statusCode: 200, requestID: "r\(n)",
                         destinationService: "backend")
    }

    @Test func recordQueuesAndTheExportTaskEncodes() async {
        let exporter = ScriptedExporter()
        let telemetry = SidecarTelemetry(
            configuration: TelemetryConfiguration(serviceName: "backend", maxQueuedSpans: 3), exporter: exporter,
            logger: Logger(label: "test"), samplingPercent: { 25 })
        for n in 0..<5 { telemetry.record(Self.hop(UInt64(n))) }
        #expect(telemetry.batcher?.queued == 0, "nothing is encoded on the request path")
        #expect(telemetry.metrics.prometheusText().contains("meshtrace_sidecar_spans_dropped_total 2"), "\(telemetry.metrics.prometheusText())")
        await telemetry.flush()
        let spans = Array(exporter.batches.joined())
        #expect(spans.map(\.spanID.value) == [1, 2, 3], "the first three, in order; two dropped at the bound")
        // Zipkin tags come back as strings: compare the text.
        #expect(spans.first?.attribute("sampling.rate").map { "\($0)" } == "0.25", "the rate in force when the hop was recorded")
        #expect(spans.first?.kind == .server)
    }

    @Test func theExportLoopEncodesWithoutAFlush() async {
        let exporter = ScriptedExporter()
        let telemetry = SidecarTelemetry(
            configuration: TelemetryConfiguration(serviceName: "backend", maxBatchSpans: 2), exporter: exporter,
            logger: Logger(label: "test"), samplingPercent: { 100 })
        telemetry.start()
        for n in 0..<4 { telemetry.record(Self.hop(UInt64(n))) }
        #expect(await waitUntil { exporter.batches.map(\.count) == [2, 2] })
        await telemetry.flush()
    }
}
