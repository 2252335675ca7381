import CoreMetrics
import Metrics
import Prometheus
import Synchronization

/// Istio's standard HTTP metrics with Istio's label names, so Kiali's queries, Grafana's Istio
/// dashboards and existing PromQL work unchanged (mesh-and-proxy-facts §3.1); and for CONNECT
/// tunnels, Istio's TCP metrics too, as Envoy reports the TCP traffic it passes through.
/// Handles are cached per label set: creating them per request would take the registry's lock
/// and rebuild label arrays on the request path.
public final class IstioMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let workload: String
    private let namespace: String
    private let handles = Mutex<HandleCache>(HandleCache())
    private let tcpHandles = Mutex<[LabelKey: TCPHandles]>([:])
    public let spansExported: CoreMetrics.Counter
    public let spansDropped: CoreMetrics.Counter
    public let exportFailures: CoreMetrics.Counter

    static let durationBuckets: [Double] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]
    static let byteBuckets: [Double] = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000]

    public init(workload: String, namespace: String, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.workload = workload
        self.namespace = namespace
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.valueHistogramBuckets = [
            "istio_request_duration_milliseconds": Self.durationBuckets,
            "istio_request_bytes": Self.byteBuckets,
            "istio_response_bytes": Self.byteBuckets,
        ]
        self.factory = factory
        spansExported = CoreMetrics.Counter(label: "meshtrace_sidecar_spans_exported_total", factory: factory)
        spansDropped = CoreMetrics.Counter(label: "meshtrace_sidecar_spans_dropped_total", factory: factory)
        exportFailures = CoreMetrics.Counter(label: "meshtrace_sidecar_export_failures_total", factory: factory)
        // 1 per running proxy, as Istio's: the Istio Mesh dashboard's "Component Versions" sums it.
        CoreMetrics.Gauge(label: "istio_build", dimensions: [("component", "proxy"), ("tag", "meshtrace")], factory: factory).record(1)
    }

    private struct LabelKey: Hashable {
        var reporter: String
        var source: String
        var destination: String
        var code: String
        var flags: String
        /// "http", "grpc" or "tcp".
        var protocolName: String
        /// A gRPC call's status ("" otherwise).
        var grpcStatus: String
    }

    private struct Handles {
        let requests: CoreMetrics.Counter
        let duration: CoreMetrics.Recorder
        let requestBytes: CoreMetrics.Recorder
        let responseBytes: CoreMetrics.Recorder
        /// gRPC label sets only: messages each way (streams carry many per call).
        let requestMessages: CoreMetrics.Counter?
        let responseMessages: CoreMetrics.Counter?
    }

    private struct TCPHandles {
        let opened: CoreMetrics.Counter
        let closed: CoreMetrics.Counter
        let sent: CoreMetrics.Counter
        let received: CoreMetrics.Counter
    }

    /// Handles by label set, and the last ones used: consecutive requests nearly always share
    /// their labels, and comparing five strings is cheaper than hashing them.
    private struct HandleCache {
        var byKey: [LabelKey: Handles] = [:]
        var last: (key: LabelKey, handles: Handles)?
    }

    /// Who reports and who is at each end, as Istio labels them, with the outcome's labels.
    private func labelKey(_ hop: HopRecord, code: String, flags: String, protocolName: String) -> LabelKey {
        let inbound = hop.direction == .inbound
        return LabelKey(
            reporter: inbound ? "destination" : "source", source: inbound ? hop.sourceService ?? "unknown" : workload,
            destination: hop.destinationService, code: code, flags: flags, protocolName: protocolName,
            grpcStatus: hop.grpcStatus.map(String.init) ?? "")
    }

    public func record(_ hop: HopRecord) {
        let code = hop.statusCode.map(String.init) ?? "0"
        let flags = hop.responseFlags.isEmpty ? "-" : hop.responseFlags.joined(separator: ",")
        let key = labelKey(hop, code: code, flags: flags, protocolName: hop.isGRPC ? "grpc" : "http")
        let h = handles.withLock { cache -> Handles in
            if let last = cache.last, last.key == key { return last.handles }
            if let existing = cache.byKey[key] {
                cache.last = (key, existing)
                return existing
            }
            let labels = labelSet(key, direction: hop.direction)
            let made = Handles(
                requests: CoreMetrics.Counter(label: "istio_requests_total", dimensions: labels, factory: factory),
                duration: CoreMetrics.Recorder(label: "istio_request_duration_milliseconds", dimensions: labels, aggregate: true, factory: factory),
                requestBytes: CoreMetrics.Recorder(label: "istio_request_bytes", dimensions: labels, aggregate: true, factory: factory),
                responseBytes: CoreMetrics.Recorder(label: "istio_response_bytes", dimensions: labels, aggregate: true, factory: factory),
                requestMessages: key.protocolName == "grpc"
                    ? CoreMetrics.Counter(label: "istio_request_messages_total", dimensions: labels, factory: factory) : nil,
                responseMessages: key.protocolName == "grpc"
                    ? CoreMetrics.Counter(label: "istio_response_messages_total", dimensions: labels, factory: factory) : nil)
            cache.byKey[key] = made
            cache.last = (key, made)
            return made
        }
        h.requests.increment()
        h.duration.record(Double(hop.durationNanos) / 1e6)
        h.requestBytes.record(hop.requestBytes)
        h.responseBytes.record(hop.responseBytes)
        if let messages = hop.grpcMessages {
            h.requestMessages?.increment(by: Int64(messages.request))
            h.responseMessages?.increment(by: Int64(messages.response))
        }
        if hop.isTunnel {
            let tcp = tcpHandles(for: hop)
            tcp.closed.increment()
            // What periodic reports have not counted yet. "Sent" is toward the client, as Istio counts it.
            tcp.sent.increment(by: Int64(max(0, hop.responseBytes - hop.tunnelBytesReported.response)))
            tcp.received.increment(by: Int64(max(0, hop.requestBytes - hop.tunnelBytesReported.request)))
        }
    }

    public func tunnelOpened(_ hop: HopRecord) {
        tcpHandles(for: hop).opened.increment()
    }

    public func tunnelProgress(_ hop: HopRecord, sent: Int, received: Int) {
        let tcp = tcpHandles(for: hop)
        tcp.sent.increment(by: Int64(sent))
        tcp.received.increment(by: Int64(received))
    }

    /// TCP series carry no response code: opened and closed must share one label set, and the
    /// flags are those known when the tunnel opened (none).
    private func tcpHandles(for hop: HopRecord) -> TCPHandles {
        let key = labelKey(hop, code: "", flags: "-", protocolName: "tcp")
        return tcpHandles.withLock { cache in
            if let existing = cache[key] { return existing }
            let labels = labelSet(key, direction: hop.direction).filter { $0.0 != "response_code" && $0.0 != "grpc_response_status" }
            let made = TCPHandles(
                opened: CoreMetrics.Counter(label: "istio_tcp_connections_opened_total", dimensions: labels, factory: factory),
                closed: CoreMetrics.Counter(label: "istio_tcp_connections_closed_total", dimensions: labels, factory: factory),
                sent: CoreMetrics.Counter(label: "istio_tcp_sent_bytes_total", dimensions: labels, factory: factory),
                received: CoreMetrics.Counter(label: "istio_tcp_received_bytes_total", dimensions: labels, factory: factory))
            cache[key] = made
            return made
        }
    }

    /// Every label Istio's stats filter emits, in one fixed order (Prometheus requires the same
    /// label names for every series of a metric).
    private func labelSet(_ key: LabelKey, direction: ProxyDirection) -> [(String, String)] {
        let destinationFQDN = "\(key.destination).\(namespace).svc.cluster.local"
        let destinationKnown = key.destination != "unknown"
        return [
            ("reporter", key.reporter),
            ("source_workload", key.source),
            ("source_workload_namespace", key.source == "unknown" ? "unknown" : namespace),
            ("source_principal", "unknown"),
            ("source_app", key.source),
            ("source_version", "unknown"),
            ("source_canonical_service", key.source),
            ("source_canonical_revision", "latest"),
            ("source_cluster", "meshtrace"),
            ("destination_workload", destinationKnown ? key.destination : "unknown"),
            ("destination_workload_namespace", destinationKnown ? namespace : "unknown"),
            ("destination_principal", "unknown"),
            ("destination_app", key.destination),
            ("destination_version", "unknown"),
            ("destination_service", destinationFQDN),
            ("destination_service_name", key.destination),
            ("destination_service_namespace", namespace),
            ("destination_canonical_service", key.destination),
            ("destination_canonical_revision", "latest"),
            ("destination_cluster", "meshtrace"),
            ("request_protocol", key.protocolName),
            ("response_code", key.code),
            ("grpc_response_status", key.grpcStatus),
            ("response_flags", key.flags),
            ("connection_security_policy", direction == .inbound ? "none" : "unknown"),
        ]
    }

    public func prometheusText() -> String { registry.emitToString() }
}
