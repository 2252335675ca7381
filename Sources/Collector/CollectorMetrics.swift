import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// The collector's self-observability. Each collector owns its registry (not the global
/// MetricsSystem), so several collectors in one test process never share counters.
public final class CollectorMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    public init() {
        registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5),
        ]
        self.factory = factory
        queueDepth = CoreMetrics.Gauge(label: "meshtrace_collector_queue_depth_spans", factory: factory)
        storedSpans = CoreMetrics.Gauge(label: "meshtrace_collector_store_spans", factory: factory)
        storeBytes = CoreMetrics.Gauge(label: "meshtrace_collector_store_bytes", factory: factory)
        writeLatency = Metrics.Timer(label: "meshtrace_collector_write_latency_seconds", preferredDisplayUnit: .seconds, factory: factory)
        retentionDeleted = CoreMetrics.Counter(label: "meshtrace_collector_retention_deleted_spans_total", factory: factory)
    }

    /// Per-protocol counters; `protocol` is e.g. "zipkin_json", "otlp_proto".
    public struct ProtocolCounters: Sendable {
        public let received: CoreMetrics.Counter
        public let accepted: CoreMetrics.Counter
        public let rejected: CoreMetrics.Counter
        public let truncatedValues: CoreMetrics.Counter
        public let requests: CoreMetrics.Counter
        public let badRequests: CoreMetrics.Counter
        public let throttled: CoreMetrics.Counter
    }

    public func counters(protocol name: String) -> ProtocolCounters {
        let dims = [("protocol", name)]
        return ProtocolCounters(
            received: CoreMetrics.Counter(label: "meshtrace_collector_spans_received_total", dimensions: dims, factory: factory),
            accepted: CoreMetrics.Counter(label: "meshtrace_collector_spans_accepted_total", dimensions: dims, factory: factory),
            rejected: CoreMetrics.Counter(label: "meshtrace_collector_spans_rejected_total", dimensions: dims, factory: factory),
            truncatedValues: CoreMetrics.Counter(label: "meshtrace_collector_truncated_attribute_values_total", dimensions: dims, factory: factory),
            requests: CoreMetrics.Counter(label: "meshtrace_collector_requests_total", dimensions: dims, factory: factory),
            badRequests: CoreMetrics.Counter(label: "meshtrace_collector_bad_requests_total", dimensions: dims, factory: factory),
            throttled: CoreMetrics.Counter(label: "meshtrace_collector_throttled_requests_total", dimensions: dims, factory: factory)
        )
    }

    public let queueDepth: CoreMetrics.Gauge
    public let storedSpans: CoreMetrics.Gauge
    public let storeBytes: CoreMetrics.Gauge
    public let writeLatency: Metrics.Timer
    public let retentionDeleted: CoreMetrics.Counter

    /// Text written by hand after the registry's (the span metrics, whose weighted counts and
    /// capped series the registry's types do not offer).
    private let expositions = Mutex<[@Sendable () -> String]>([])

    func addExposition(_ text: @escaping @Sendable () -> String) {
        expositions.withLock { $0.append(text) }
    }

    public func prometheusText() -> String {
        registry.emitToString() + expositions.withLock { $0 }.map { $0() }.joined()
    }
}
