import Logging
import MeshtraceTesting
import Testing
import TailSampling
import TraceModel
import TraceStorage

@testable import Collector

/// The stage on a clock the test moves, over a real ingest queue and in-memory store.
@Suite struct TailSamplingServiceTests {
    static let base: UInt64 = 1_700_000_000_000_000_000

    /// root SERVER (gateway) → CLIENT → SERVER (backend), the backend's status as given.
    static func trace(_ n: UInt64, status: Int = 200, complete: Bool = true) -> [Span] {
        let id = TraceID(high: 7, low: n)
        func sid(_ v: UInt64) -> SpanID { SpanID(v) ?? SpanID(1)! }
        let spans = [
            Span(traceID: id, spanID: sid(1), kind: .server, name: "GET /", startTimeNanos: base, durationNanos: 9_000_000, serviceName: "gateway"),
            Span(traceID: id, spanID: sid(2), parentSpanID: sid(1), kind: .client, name: "GET /", startTimeNanos: base + 1_000,
                 durationNanos: 8_000_000, serviceName: "gateway", attributes: [Attribute("http.status_code", .int(Int64(status)))]),
            Span(traceID: id, spanID: sid(3), parentSpanID: sid(2), kind: .server, name: "GET /", startTimeNanos: base + 2_000,
                 durationNanos: 7_000_000, serviceName: "backend", attributes: [Attribute("http.status_code", .int(Int64(status)))],
                 status: status >= 500 ? .error() : .unset),
        ]
        return complete ? spans : Array(spans.prefix(2))
    }

    struct Harness {
        let clock = ManualClock()
        let store = InMemoryTraceStore(logger: Logger(label: "test"))
        let queue: IngestQueue
        let service: TailSamplingService<ManualClock>
        let aggregate: REDAggregate

        init(policies: [SamplingPolicy], wait: Duration = .seconds(10)) throws {
            queue = IngestQueue(store: store, logger: Logger(label: "test"))
            var configuration = TailSamplingConfiguration(policies: policies)
            configuration.decisionWait = wait
            aggregate = REDAggregate(now: { TailSamplingServiceTests.base + 30_000_000_000 })
            service = try TailSamplingService(
                clock: clock, policy: SamplingPolicyFile(configuration: configuration), queue: queue,
                metrics: TailSamplingMetrics(factory: CollectorMetrics().factory), aggregate: aggregate, spanMetrics: SpanMetrics(),
                logger: Logger(label: "test"))
        }

        func stored(_ n: UInt64) async throws -> [Span] { try await store.trace(id: TraceID(high: 7, low: n)) }

        /// Lets the stage's ticker run once after the clock moved: it parks on the clock again.
        func advance(by duration: Duration) async throws {
            clock.advance(by: duration)
            try await pollUntil(.seconds(20), "the stage to park on the clock") { clock.sleeperCount == 1 }
        }
    }

    static let errorsOnly = [SamplingPolicy(name: "errors", rule: .statusCode([.error]))]

    @Test func keptSpansAreCommittedBeforeTheAnswerAndCarryTheirCount() async throws {
        let h = try Harness(policies: [SamplingPolicy(name: "half", rule: .probabilistic(samplingPercentage: 50, hashSalt: ""))]
                            + Self.errorsOnly)
        try await withRunning(h) {
            try await h.service.submit(Self.trace(1, status: 503))
            let stored = try await h.stored(1)
            #expect(stored.count == 3)
            #expect(stored.allSatisfy { $0.attribute("sampling.adjusted_count") == .double(1) })
        }
    }

    @Test func aTraceWaitsForDecisionWaitOnTheClockAndNoLonger() async throws {
        let h = try Harness(policies: Self.errorsOnly)
        try await withRunning(h) {
            var spans = Self.trace(2, status: 500, complete: false)
            spans[1].status = .error()
            try await h.service.submit(spans)
            try await h.advance(by: .milliseconds(9_900))
            #expect(try await h.stored(2).isEmpty)
            try await h.advance(by: .milliseconds(100))
            try await pollUntil(.seconds(20), "the decided trace to be written") { try await h.stored(2).count == 2 }
        }
    }

    @Test func lateSpansFollowTheDecisionAndAreCommittedBeforeTheAnswer() async throws {
        let h = try Harness(policies: Self.errorsOnly)
        try await withRunning(h) {
            try await h.service.submit(Self.trace(3, status: 500) + Self.trace(4))
            var late = Self.trace(3)[0]
            late.spanID = SpanID(9) ?? late.spanID
            late.parentSpanID = SpanID(3)
            try await h.service.submit([late])
            #expect(try await h.stored(3).count == 4)
            late.traceID = TraceID(high: 7, low: 4)
            late.status = .error()
            try await h.service.submit([late])
            #expect(try await h.stored(4).isEmpty)
        }
    }

    @Test func droppedTracesStillCountInTheGraph() async throws {
        let h = try Harness(policies: Self.errorsOnly)
        try await withRunning(h) {
            for n in 10..<20 as Range<UInt64> { try await h.service.submit(Self.trace(n, status: n == 10 ? 500 : 200)) }
            let graph = h.aggregate.graph(startNanos: Self.base - 10_000_000_000, endNanos: Self.base + 10_000_000_000)
            let edge = try #require(graph.edges.first { $0.source == "gateway" && $0.target == "backend" })
            #expect(edge.traffic.requests == 10)
            #expect(edge.traffic.errors5xx == 1)
            #expect(try await h.store.stats().spanCount == 3)
        }
    }

    @Test func turningOffDecidesWhatWaitsAndPassesSpansThrough() async throws {
        let h = try Harness(policies: [SamplingPolicy(name: "all", rule: .alwaysSample)])
        try await withRunning(h) {
            try await h.service.submit(Self.trace(30, complete: false))
            try h.service.setPolicy(nil)
            try await pollUntil(.seconds(20), "the flushed trace to be written") { try await h.stored(30).count == 2 }
            try await h.service.submit(Self.trace(31, complete: false))
            #expect(try await h.stored(31).count == 2)  // no decision to wait for
        }
    }

    /// Runs the queue's writer and the stage, then stops both.
    func withRunning(_ h: Harness, _ body: () async throws -> Void) async throws {
        let writer = Task { await h.queue.run() }
        let stage = Task { try await h.service.run() }
        try await pollUntil(.seconds(20), "the stage to park on the clock") { h.clock.sleeperCount == 1 }
        do {
            try await body()
        } catch {
            stage.cancel()
            h.queue.shutdown()
            _ = await (stage.result, writer.value)
            throw error
        }
        stage.cancel()
        _ = await stage.result
        h.queue.shutdown()
        await writer.value
    }
}

@Suite struct REDAggregateTests {
    static let t0: UInt64 = 1_700_000_000_000_000_000

    static func call(_ n: UInt64, at offset: UInt64, ms: UInt64, status: Int = 200) -> [Span] {
        let id = TraceID(high: 9, low: n)
        let client = Span(traceID: id, spanID: SpanID(1) ?? SpanID(2)!, kind: .client, name: "GET /", startTimeNanos: t0 + offset,
                          durationNanos: ms * 1_000_000, serviceName: "a", attributes: [Attribute("http.status_code", .int(Int64(status)))])
        let server = Span(traceID: id, spanID: SpanID(2) ?? SpanID(3)!, parentSpanID: client.spanID, kind: .server, name: "GET /",
                          startTimeNanos: t0 + offset, durationNanos: ms * 1_000_000, serviceName: "b")
        return [client, server]
    }

    @Test func windowsAreMadeOfWholeFiveSecondBucketsByTheirMiddle() {
        let aggregate = REDAggregate(now: { REDAggregateTests.t0 + 120_000_000_000 })
        aggregate.activate()
        for n in 0..<100 as Range<UInt64> { aggregate.record(Self.call(n, at: n * 1_000_000_000 / 10, ms: n + 1)) }  // 10 s, 10/s
        let all = aggregate.graph(startNanos: Self.t0 - 1, endNanos: Self.t0 + 60_000_000_000)
        #expect(all.edges.first?.traffic.requests == 100)
        // [t0+3s, t0+8s]: only the bucket [5s, 10s) has its middle inside.
        let part = aggregate.graph(startNanos: Self.t0 + 3_000_000_000, endNanos: Self.t0 + 8_000_000_000)
        #expect(part.edges.first?.traffic.requests == 50)
    }

    @Test func p95IsWithinTwoPercent() {
        let aggregate = REDAggregate(now: { REDAggregateTests.t0 + 60_000_000_000 })
        aggregate.activate()
        for n in 0..<1000 as Range<UInt64> { aggregate.record(Self.call(n, at: 1_000, ms: n + 1)) }  // 1..1000 ms
        let p95 = aggregate.graph(startNanos: Self.t0, endNanos: Self.t0 + 10_000_000_000).edges.first?.p95Ms ?? 0
        #expect(p95 >= 950 && p95 <= 950 * 1.02, "\(p95)")
    }

    @Test func itCountsFromTheFirstWholeBucketAfterItWasTurnedOn() {
        let aggregate = REDAggregate(now: { REDAggregateTests.t0 + 1_000_000_000 })
        #expect(aggregate.countsFrom == nil)
        aggregate.activate()
        // t0 is a multiple of 5 s; on at t0 + 1 s, so complete from t0 + 5 s.
        #expect(aggregate.countsFrom == Self.t0 + 5_000_000_000)
        aggregate.deactivate()
        #expect(aggregate.countsFrom == nil)
    }
}

@Suite struct SpanMetricsTests {
    @Test func exposesTheSpanmetricsConnectorsSeries() {
        let metrics = SpanMetrics(maxSeries: 1)
        var span = Span(traceID: TraceID(high: 1, low: 1), spanID: SpanID(1) ?? SpanID(2)!, kind: .server, name: "GET /a\"b",
                        startTimeNanos: 1, durationNanos: 5_000_000, serviceName: "svc", status: .error())
        span.attributes = [Attribute("sampling.rate", .double(0.5))]
        metrics.record([span])
        span.name = "other"
        metrics.record([span])
        let text = metrics.exposition()
        let labels = #"service_name="svc",span_name="GET /a\"b",span_kind="SPAN_KIND_SERVER",status_code="STATUS_CODE_ERROR""#
        #expect(text.contains("traces_span_metrics_calls_total{\(labels)} 2\n"))
        #expect(text.contains("traces_span_metrics_duration_milliseconds_bucket{\(labels),le=\"4\"} 0\n"))
        #expect(text.contains("traces_span_metrics_duration_milliseconds_bucket{\(labels),le=\"6\"} 2\n"))
        #expect(text.contains("traces_span_metrics_duration_milliseconds_sum{\(labels)} 10\n"))
        #expect(text.contains("traces_span_metrics_calls_total{otel_metric_overflow=\"true\"} 2\n"))
    }
}
