import Logging
import Metrics
import TraceModel
import TraceStorage
import TraceWire

/// Hands decoded spans to the ingest pipeline (their owner collector, tail sampling, the
/// durable queue) and keeps the per-protocol counts. A successful return means the spans are
/// committed to the store, or, with tail sampling on, held for their trace's decision
/// (`TailSamplingService` says which).
struct SpanIngestor: Sendable {
    let pipeline: IngestPipeline
    let readiness: Readiness
    let metrics: CollectorMetrics
    let logger: Logger
    /// Tag values for Zipkin's autocomplete, recorded once the spans are committed.
    var autocomplete: AutocompleteIndex? = nil

    /// `forwarded`: the request came from a peer collector that found this one owns the traces.
    func ingest(_ batch: DecodedBatch, counters: CollectorMetrics.ProtocolCounters, forwarded: Bool = false) async throws(HTTPFailure) {
        counters.received.increment(by: batch.spans.count + batch.rejected.count)
        if !batch.rejected.isEmpty { counters.rejected.increment(by: batch.rejected.count) }
        if batch.truncatedValues > 0 { counters.truncatedValues.increment(by: batch.truncatedValues) }
        guard !batch.spans.isEmpty else { return }
        // The store failed its last probe (ClickHouse down): answer now rather than queue spans
        // that would wait out the write retries and fail anyway.
        guard readiness.isStoreReady else {
            counters.throttled.increment()
            throw HTTPFailure(status: .serviceUnavailable, message: "the trace store is unavailable; retry later", retryAfter: 5)
        }
        let started = ContinuousClock.now
        do {
            try await pipeline.submit(batch.spans, forwarded: forwarded)
        } catch {
            switch error {
            case .queueFull:
                counters.throttled.increment()
                throw HTTPFailure(status: .serviceUnavailable, message: "ingest queue is full; retry later", retryAfter: 1)
            case .shuttingDown:
                counters.throttled.increment()
                throw HTTPFailure(status: .serviceUnavailable, message: "collector is shutting down; retry later", retryAfter: 5)
            case .storeFailed(let message):
                logger.error("store write failed", metadata: ["error": "\(message)"])
                throw HTTPFailure(status: .serviceUnavailable, message: "store write failed: \(message)", retryAfter: 1)
            }
        }
        metrics.writeLatency.recordNanoseconds(Int64((ContinuousClock.now - started).nanoseconds))
        counters.accepted.increment(by: batch.spans.count)
        autocomplete?.record(batch.spans)
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

extension Counter {
    func increment(by amount: Int) { increment(by: Int64(amount)) }
}

/// What each receiver holds: the body reader, the ingestor, and its counters for the two
/// encodings it accepts (`<protocol>_json`, `<protocol>_proto`).
struct ReceiverWiring: Sendable {
    let body: IngestBody
    let ingestor: SpanIngestor
    let json: CollectorMetrics.ProtocolCounters
    let proto: CollectorMetrics.ProtocolCounters

    init(body: IngestBody, ingestor: SpanIngestor, metrics: CollectorMetrics, protocol name: String) {
        self.body = body
        self.ingestor = ingestor
        json = metrics.counters(protocol: name + "_json")
        proto = metrics.counters(protocol: name + "_proto")
    }
}
