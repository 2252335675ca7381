import TraceStorage

/// Everything `meshtrace collector` can be told. Defaults match Zipkin and Jaeger's ports so
/// existing clients need no change.
public struct CollectorConfiguration: Sendable {
    public var host: String = "127.0.0.1"
    public var zipkinPort: Int = 9411
    public var otlpHTTPPort: Int = 4318
    /// OTLP/gRPC; -1 turns it off. Off unless asked for here, so a process that embeds the
    /// collector (the mesh runner, tests) never takes 4317 by surprise; `meshtrace collector`
    /// asks for 4317.
    public var otlpGRPCPort: Int = -1
    /// Message size, concurrent calls and keepalive for the gRPC listener.
    public var grpcLimits = GRPCListenerLimits()
    /// PEM certificate chain and key: the OTLP/gRPC port speaks TLS instead of plaintext.
    public var otlpGRPCTLS: GRPCTLSFiles?
    /// SkyWalking agents' gRPC report (`TraceSegmentReportService/collect`, the management calls);
    /// -1 turns it off. Off unless asked for, like OTLP/gRPC; `meshtrace collector` asks for 11800.
    public var skywalkingGRPCPort: Int = -1
    /// SkyWalking agents' HTTP report (`POST /v3/segment(s)`, `/v3/management/*`); -1 turns it
    /// off. `meshtrace collector` asks for 12800.
    public var skywalkingHTTPPort: Int = -1
    /// Span tag keys whose values `/api/v2/autocompleteValues` lists (Zipkin's AUTOCOMPLETE_KEYS).
    public var autocompleteKeys: [String] = []
    public var queryPort: Int = 16686
    public var adminPort: Int = 14269
    public var storage: StorageKind = .sqlite
    /// Connection settings when `storage` is `.clickhouse`.
    public var clickHouse: ClickHouseConfiguration?
    /// Resolved data directory (the CLI applies `$MESHTRACE_DATA_DIR` and the XDG default).
    public var dataDirectory: String?
    /// Spans that started longer ago than this are deleted in the background.
    public var retentionSeconds: Double = 72 * 3600
    /// Largest request body accepted on the wire (413 above it).
    public var maxRequestBodyBytes: Int = 16 * 1024 * 1024
    /// Largest body after gzip decompression (413 above it). OTLP recommends 64 MiB.
    public var maxDecompressedBodyBytes: Int = 64 * 1024 * 1024
    /// Spans waiting for the writer; beyond this ingest answers 503 with Retry-After.
    public var ingestQueueCapacitySpans: Int = 200_000
    /// How often retention runs (`--retention-check-interval`).
    public var retentionIntervalSeconds: Double = 60
    /// Tail-based sampling (`--sampling-policy FILE`); nil keeps every span, the default.
    public var samplingPolicy: SamplingPolicyFile?
    /// The file `samplingPolicy` came from: re-read when its content changes.
    public var samplingPolicyPath: String?

    public init() {}
}
