import CoreMetrics
import Synchronization
import TailSampling

/// The tail-sampling stage's own counters on `/metrics`, named after OpenTelemetry's
/// (`otelcol_processor_tail_sampling_*`) where one exists.
final class TailSamplingMetrics: Sendable {
    private let factory: any MetricsFactory
    let bufferedTraces: CoreMetrics.Gauge
    let bufferedSpans: CoreMetrics.Gauge
    let duplicateSpans: CoreMetrics.Counter
    /// Kept spans lost after their decision because the store refused them.
    let writeFailedSpans: CoreMetrics.Counter
    let reloadsOK: CoreMetrics.Counter
    let reloadsFailed: CoreMetrics.Counter
    let forwardedSpans: CoreMetrics.Counter
    /// Spans another collector owns that were decided here because it could not be reached.
    let forwardFallbackSpans: CoreMetrics.Counter
    private let decisionCounters: Mutex<[String: CoreMetrics.Counter]>
    private let policyCounters: Mutex<[String: CoreMetrics.Counter]>

    init(factory: any MetricsFactory) {
        self.factory = factory
        bufferedTraces = CoreMetrics.Gauge(label: "meshtrace_tail_sampling_traces_buffered", factory: factory)
        bufferedSpans = CoreMetrics.Gauge(label: "meshtrace_tail_sampling_spans_buffered", factory: factory)
        duplicateSpans = CoreMetrics.Counter(label: "meshtrace_tail_sampling_duplicate_spans_total", factory: factory)
        writeFailedSpans = CoreMetrics.Counter(label: "meshtrace_tail_sampling_write_failed_spans_total", factory: factory)
        reloadsOK = CoreMetrics.Counter(label: "meshtrace_tail_sampling_reloads_total", dimensions: [("result", "ok")], factory: factory)
        reloadsFailed = CoreMetrics.Counter(label: "meshtrace_tail_sampling_reloads_total", dimensions: [("result", "error")], factory: factory)
        forwardedSpans = CoreMetrics.Counter(label: "meshtrace_collector_forwarded_spans_total", factory: factory)
        forwardFallbackSpans = CoreMetrics.Counter(label: "meshtrace_collector_forward_fallback_spans_total", factory: factory)
        decisionCounters = Mutex([:])
        policyCounters = Mutex([:])
    }

    /// `meshtrace_tail_sampling_decisions_total{decision, trigger}`: `trigger="overflow"` counts
    /// the traces decided early because the buffer was full.
    func decided(_ decision: TraceDecision, trigger: DecisionTrigger) {
        let key = decision.label + "|" + trigger.rawValue
        counter(key, in: decisionCounters) {
            CoreMetrics.Counter(label: "meshtrace_tail_sampling_decisions_total",
                                dimensions: [("decision", decision.label), ("trigger", trigger.rawValue)], factory: factory)
        }.increment()
    }

    /// `meshtrace_tail_sampling_late_spans_total{decision}`: spans that arrived after their
    /// trace was decided and followed the decision.
    func late(_ count: Int, sampled: Bool) {
        let label = sampled ? "sampled" : "not_sampled"
        counter("late|" + label, in: decisionCounters) {
            CoreMetrics.Counter(label: "meshtrace_tail_sampling_late_spans_total", dimensions: [("decision", label)], factory: factory)
        }.increment(by: Int64(count))
    }

    /// OpenTelemetry's `count_traces_sampled{policy, sampled}`.
    func policy(_ name: String, sampled: Bool) {
        let key = name + "|" + (sampled ? "true" : "false")
        counter(key, in: policyCounters) {
            CoreMetrics.Counter(label: "meshtrace_tail_sampling_policy_traces_total",
                                dimensions: [("policy", name), ("sampled", sampled ? "true" : "false")], factory: factory)
        }.increment()
    }

    private func counter(_ key: String, in table: borrowing Mutex<[String: CoreMetrics.Counter]>, make: () -> CoreMetrics.Counter) -> CoreMetrics.Counter {
        table.withLock { counters in
            if let existing = counters[key] { return existing }
            let made = make()
            counters[key] = made
            return made
        }
    }
}
