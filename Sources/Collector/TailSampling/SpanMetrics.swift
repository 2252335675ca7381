import Synchronization
import TraceModel

/// Request counts and duration histograms per service, span name, kind and status, from every
/// span before the sampling decision, in the names and buckets of OpenTelemetry's `spanmetrics`
/// connector as its Prometheus exporter writes them:
/// `traces_span_metrics_calls_total{service_name, span_name, span_kind, status_code}` and
/// `traces_span_metrics_duration_milliseconds_{bucket,sum,count}`. Dashboards built on the
/// connector read them unchanged. Each span counts its adjusted count (head sampling's
/// `1 / sampling.rate`), so the rates estimate real traffic.
///
/// Series are capped (`maxSeries`); spans of new combinations past it are counted in one
/// series labelled `otel_metric_overflow="true"`, as the connector's cardinality limit does.
final class SpanMetrics: Sendable {
    /// The connector's default buckets, milliseconds.
    static let bucketsMs: [Double] = [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10_000, 15_000]
    let maxSeries: Int

    private struct Key: Hashable, Sendable {
        var service: String
        var name: String
        var kind: SpanKind
        var status: SpanStatus.Code
    }

    private struct Series: Sendable {
        var calls: Double = 0
        var sum: Double = 0
        var buckets = [Double](repeating: 0, count: SpanMetrics.bucketsMs.count)
    }

    private struct State: Sendable {
        var series: [Key: Series] = [:]
        var overflow = Series()
        var overflowed = false
    }

    private let state = Mutex(State())

    init(maxSeries: Int = 2_000) {
        self.maxSeries = maxSeries
    }

    func record(_ spans: [Span]) {
        state.withLock { s in
            for span in spans {
                let status: SpanStatus.Code = span.isError ? .error : span.status.code
                let key = Key(service: span.serviceName, name: span.name, kind: span.kind, status: status)
                let ms = Double(span.durationNanos) / 1e6
                let weight = ServiceGraph.weight(of: span)
                if s.series[key] == nil && s.series.count >= maxSeries {
                    s.overflowed = true
                    Self.add(&s.overflow, ms: ms, weight: weight)
                } else {
                    Self.add(&s.series[key, default: Series()], ms: ms, weight: weight)
                }
            }
        }
    }

    private static func add(_ series: inout Series, ms: Double, weight: Double) {
        series.calls += weight
        series.sum += ms * weight
        for (i, bound) in bucketsMs.enumerated() where ms <= bound { series.buckets[i] += weight }
    }

    /// Prometheus text exposition (0.0.4).
    func exposition() -> String {
        let (series, overflow, overflowed) = state.withLock { ($0.series, $0.overflow, $0.overflowed) }
        var rows = series.map { (labels: Self.labels($0.key), series: $0.value) }.sorted { $0.labels < $1.labels }
        if overflowed { rows.append((labels: "otel_metric_overflow=\"true\"", series: overflow)) }
        guard !rows.isEmpty else { return "" }
        var out = "# HELP traces_span_metrics_calls_total Spans seen before tail sampling, weighted by adjusted count.\n"
        out += "# TYPE traces_span_metrics_calls_total counter\n"
        for row in rows { out += "traces_span_metrics_calls_total{\(row.labels)} \(Self.number(row.series.calls))\n" }
        out += "# HELP traces_span_metrics_duration_milliseconds Span durations before tail sampling.\n"
        out += "# TYPE traces_span_metrics_duration_milliseconds histogram\n"
        for row in rows {
            for (i, bound) in Self.bucketsMs.enumerated() {
                out += "traces_span_metrics_duration_milliseconds_bucket{\(row.labels),le=\"\(Self.number(bound))\"} \(Self.number(row.series.buckets[i]))\n"
            }
            out += "traces_span_metrics_duration_milliseconds_bucket{\(row.labels),le=\"+Inf\"} \(Self.number(row.series.calls))\n"
            out += "traces_span_metrics_duration_milliseconds_sum{\(row.labels)} \(Self.number(row.series.sum))\n"
            out += "traces_span_metrics_duration_milliseconds_count{\(row.labels)} \(Self.number(row.series.calls))\n"
        }
        return out
    }

    private static func labels(_ key: Key) -> String {
        "service_name=\"\(escape(key.service))\",span_name=\"\(escape(key.name))\",span_kind=\"\(kindName(key.kind))\",status_code=\"\(statusName(key.status))\""
    }

    static func kindName(_ kind: SpanKind) -> String {
        switch kind {
        case .unspecified: return "SPAN_KIND_UNSPECIFIED"
        case .internal: return "SPAN_KIND_INTERNAL"
        case .server: return "SPAN_KIND_SERVER"
        case .client: return "SPAN_KIND_CLIENT"
        case .producer: return "SPAN_KIND_PRODUCER"
        case .consumer: return "SPAN_KIND_CONSUMER"
        }
    }

    static func statusName(_ code: SpanStatus.Code) -> String {
        switch code {
        case .unset: return "STATUS_CODE_UNSET"
        case .ok: return "STATUS_CODE_OK"
        case .error: return "STATUS_CODE_ERROR"
        }
    }

    /// Label values escape `\`, `"` and newlines (text format 0.0.4).
    static func escape(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for c in value.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
