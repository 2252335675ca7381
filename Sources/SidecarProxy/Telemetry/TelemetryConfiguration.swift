import TraceExport
import TraceModel

/// How the sidecar's spans and metrics describe this workload.
public struct TelemetryConfiguration: Sendable {
    /// The workload's service name (span resource `service.name`, Istio `*_canonical_service`).
    public var serviceName: String
    /// Envoy's `node_id` tag.
    public var nodeID: String
    public var namespace: String
    public var exporter: SpanExportTarget
    public var naming: SpanNaming
    /// Spans buffered for export; beyond it new spans are dropped and counted.
    public var maxQueuedSpans: Int
    public var maxBatchSpans: Int
    public var flushIntervalSeconds: Double
    /// Cut `http.url` paths to this many characters, as Envoy's max_path_tag_length.
    public var maxPathTagLength: Int
    /// The workload's names for Istio's metric labels; in a pod, from the downward API.
    public var identity: WorkloadIdentity

    public init(
        serviceName: String, nodeID: String? = nil, namespace: String = "default", exporter: SpanExportTarget = .disabled,
        naming: SpanNaming = SpanNaming(), maxQueuedSpans: Int = 10_000, maxBatchSpans: Int = 512,
        flushIntervalSeconds: Double = 1, maxPathTagLength: Int = 256, identity: WorkloadIdentity? = nil
    ) {
        self.serviceName = serviceName
        self.nodeID = nodeID ?? identity?.nodeID ?? "sidecar~127.0.0.1~\(serviceName)~\(namespace)"
        self.namespace = namespace
        self.identity = identity ?? WorkloadIdentity(service: serviceName, namespace: namespace)
        self.exporter = exporter
        self.naming = naming
        self.maxQueuedSpans = maxQueuedSpans
        self.maxBatchSpans = maxBatchSpans
        self.flushIntervalSeconds = flushIntervalSeconds
        self.maxPathTagLength = maxPathTagLength
    }
}
