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
    private let identity: WorkloadIdentity
    private let handles = Mutex<HandleCache>(HandleCache())
    private let tcpHandles = Mutex<[LabelKey: TCPHandles]>([:])
    public let spansExported: CoreMetrics.Counter
    public let spansDropped: CoreMetrics.Counter
    public let exportFailures: CoreMetrics.Counter

    static let durationBuckets: [Double] = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]
    static let byteBuckets: [Double] = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000]

    public convenience init(workload: String, namespace: String, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.init(identity: WorkloadIdentity(service: workload, namespace: namespace), registry: registry)
    }

    public init(identity: WorkloadIdentity, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        self.identity = identity
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
        /// The peer's namespace (outbound: the destination's, from its DNS name).
        var peerNamespace: String
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
            reporter: inbound ? "destination" : "source", source: inbound ? hop.sourceService ?? "unknown" : identity.workload,
            destination: hop.destinationService, peerNamespace: inbound ? identity.namespace : hop.destinationNamespace ?? identity.namespace,
            code: code, flags: flags, protocolName: protocolName,
            grpcStatus: hop.grpcStatus.map(String.init) ?? "")
    }

    public func record(_ hop: HopRecord) {
        if hop.isOpaqueTCP {
            recordTCPClose(hop)
            return
        }
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
        if hop.isTunnel { recordTCPClose(hop) }
    }

    private func recordTCPClose(_ hop: HopRecord) {
        let tcp = tcpHandles(for: hop)
        tcp.closed.increment()
        // What periodic reports have not counted yet. "Sent" is toward the client, as Istio counts it.
        tcp.sent.increment(by: Int64(max(0, hop.responseBytes - hop.tunnelBytesReported.response)))
        tcp.received.increment(by: Int64(max(0, hop.requestBytes - hop.tunnelBytesReported.request)))
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

    /// One end of a request as the labels describe it: this workload by its identity, a peer
    /// by the service name it is known by.
    private struct End {
        var workload, namespace, app, version, canonicalService, canonicalRevision: String

        init(_ identity: WorkloadIdentity) {
            workload = identity.workload
            namespace = identity.workload == "unknown" ? "unknown" : identity.namespace
            app = identity.app
            version = identity.version
            canonicalService = identity.canonicalService
            canonicalRevision = identity.canonicalRevision
        }

        init(peer name: String, namespace: String) {
            let known = name != "unknown"
            workload = name
            self.namespace = known ? namespace : "unknown"
            app = name
            version = "unknown"
            canonicalService = name
            canonicalRevision = "latest"
        }
    }

    /// Every label Istio's stats filter emits, in one fixed order (Prometheus requires the same
    /// label names for every series of a metric).
    private func labelSet(_ key: LabelKey, direction: ProxyDirection) -> [(String, String)] {
        let inbound = key.reporter == "destination"
        let source = inbound ? End(peer: key.source, namespace: key.peerNamespace) : End(identity)
        let destination = inbound ? End(identity) : End(peer: key.destination, namespace: key.peerNamespace)
        let serviceName = inbound ? identity.canonicalService : key.destination
        let serviceNamespace = inbound ? identity.namespace : key.peerNamespace
        return [
            ("reporter", key.reporter),
            ("source_workload", source.workload),
            ("source_workload_namespace", source.namespace),
            ("source_principal", "unknown"),
            ("source_app", source.app),
            ("source_version", source.version),
            ("source_canonical_service", source.canonicalService),
            ("source_canonical_revision", source.canonicalRevision),
            ("source_cluster", "meshtrace"),
            ("destination_workload", destination.workload),
            ("destination_workload_namespace", destination.namespace),
            ("destination_principal", "unknown"),
            ("destination_app", destination.app),
            ("destination_version", destination.version),
            ("destination_service", "\(serviceName).\(serviceNamespace).svc.cluster.local"),
            ("destination_service_name", serviceName),
            ("destination_service_namespace", serviceNamespace),
            ("destination_canonical_service", destination.canonicalService),
            ("destination_canonical_revision", destination.canonicalRevision),
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
