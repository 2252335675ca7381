import TraceModel

/// Where spans go.
public struct SpanExportTarget: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case zipkin
        case otlp
        case none
    }

    public var kind: Kind
    /// Full URL, e.g. http://127.0.0.1:9411/api/v2/spans or http://127.0.0.1:4318/v1/traces.
    public var url: String?

    public init(kind: Kind, url: String?) {
        self.kind = kind
        self.url = url
    }

    public static let disabled = SpanExportTarget(kind: .none, url: nil)

    /// Picks the exporter from the URL's path unless `explicit` says otherwise:
    /// `…/api/v2/spans` is Zipkin, `…/v1/traces` OTLP/HTTP.
    public static func resolve(url: String?, explicit: Kind?) -> SpanExportTarget? {
        guard let url, !url.isEmpty else { return explicit == nil || explicit == SpanExportTarget.Kind.none ? .disabled : nil }
        if let explicit { return SpanExportTarget(kind: explicit, url: url) }
        if url.hasSuffix("/api/v2/spans") { return SpanExportTarget(kind: .zipkin, url: url) }
        if url.hasSuffix("/v1/traces") { return SpanExportTarget(kind: .otlp, url: url) }
        return nil
    }
}

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

    public init(
        serviceName: String, nodeID: String? = nil, namespace: String = "default", exporter: SpanExportTarget = .disabled,
        naming: SpanNaming = SpanNaming(), maxQueuedSpans: Int = 10_000, maxBatchSpans: Int = 512,
        flushIntervalSeconds: Double = 1, maxPathTagLength: Int = 256
    ) {
        self.serviceName = serviceName
        self.nodeID = nodeID ?? "sidecar~127.0.0.1~\(serviceName)~\(namespace)"
        self.namespace = namespace
        self.exporter = exporter
        self.naming = naming
        self.maxQueuedSpans = maxQueuedSpans
        self.maxBatchSpans = maxBatchSpans
        self.flushIntervalSeconds = flushIntervalSeconds
        self.maxPathTagLength = maxPathTagLength
    }
}
