import TraceModel

/// Everything the data plane knows about one request through one listener, handed to
/// telemetry once the response has finished (or failed). The data plane fills it; telemetry
/// turns it into a span and Istio metrics. Keeping this a plain value is what lets the two
/// sides be built and tested apart.
public struct HopRecord: Sendable {
    public var direction: ProxyDirection
    /// This hop's span: `spanID` is the span's own id, `parentSpanID` its parent (nil = root).
    public var context: TraceContext
    /// Whether this hop's span should be exported (the decision already propagated).
    public var sampled: Bool
    public var startNanos: UInt64
    public var durationNanos: UInt64
    public var method: String
    /// Path with query, as received.
    public var path: String
    /// Host / :authority as received.
    public var authority: String
    public var httpProtocol: String
    /// nil when no response was produced (client went away).
    public var statusCode: Int?
    /// Envoy response flags, e.g. ["UF"] or ["URX", "UF"]; empty means "-".
    public var responseFlags: [String]
    public var requestBytes: Int
    public var responseBytes: Int
    public var requestID: String
    public var userAgent: String?
    /// Remote address of the downstream connection, "ip:port".
    public var downstreamAddress: String?
    /// The service that sent the request, when known (inbound: from the caller's sidecar).
    public var sourceService: String?
    /// The service the request was for (inbound: this service; outbound: the upstream).
    public var destinationService: String
    /// The destination's namespace when it differs from this workload's (a Kubernetes Service
    /// named `reviews.other.svc.cluster.local`); nil = this workload's own.
    public var destinationNamespace: String?
    /// Envoy-style cluster name, e.g. "outbound|8080||backend" or "inbound|8080||".
    public var upstreamCluster: String?
    /// "ip:port" actually connected to.
    public var upstreamAddress: String?
    /// Retries made before the final outcome.
    public var retries: Int
    /// Human-readable reason for a proxy-generated failure (connect refused, timeout, ...).
    public var failureReason: String?
    /// Custom tags already resolved by the data plane (literal, environment, request header).
    public var customTags: [(key: String, value: String)]
    /// True when the proxy linked this span to a parent it inferred (issue: propagation doctor).
    public var parentInferred: Bool
    /// A CONNECT tunnel that was established: the byte counts are what it carried each way.
    public var isTunnel = false
    /// A captured connection relayed as plain TCP (not HTTP): only Istio's TCP metrics count it,
    /// no request series and no span.
    public var isOpaqueTCP = false
    /// What an open tunnel's periodic reports already counted (`tunnelProgress`): the closing
    /// record counts only the rest.
    public var tunnelBytesReported: (request: Int, response: Int) = (0, 0)
    /// A gRPC call (`content-type: application/grpc…`): Istio labels its metrics `grpc`.
    public var isGRPC = false
    /// The call's `grpc-status`, from its trailers (or a trailers-only response).
    public var grpcStatus: Int?
    /// gRPC messages each way (request, response); nil when not a gRPC call.
    public var grpcMessages: (request: Int, response: Int)?
    /// Trace formats found in the incoming headers, e.g. "w3c,b3multi" or "none"; nil = not recorded.
    public var propagationExtracted: String?
    /// Inbound only: the formats written toward the app, e.g. "w3c,b3multi".
    public var propagationInjected: String?
    /// Formats that arrived naming another trace or parent than the one used, e.g. "sw8"; nil: none.
    public var propagationDisagreed: String?
    /// The sampling decision the incoming headers carried, if any.
    public var upstreamSampled: Bool?

    public init(
        direction: ProxyDirection, context: TraceContext, sampled: Bool, startNanos: UInt64, durationNanos: UInt64,
        method: String, path: String, authority: String, httpProtocol: String = "HTTP/1.1", statusCode: Int?,
        responseFlags: [String] = [], requestBytes: Int = 0, responseBytes: Int = 0, requestID: String,
        userAgent: String? = nil, downstreamAddress: String? = nil, sourceService: String? = nil,
        destinationService: String, upstreamCluster: String? = nil, upstreamAddress: String? = nil, retries: Int = 0,
        failureReason: String? = nil, customTags: [(key: String, value: String)] = [], parentInferred: Bool = false
    ) {
        self.direction = direction
        self.context = context
        self.sampled = sampled
        self.startNanos = startNanos
        self.durationNanos = durationNanos
        self.method = method
        self.path = path
        self.authority = authority
        self.httpProtocol = httpProtocol
        self.statusCode = statusCode
        self.responseFlags = responseFlags
        self.requestBytes = requestBytes
        self.responseBytes = responseBytes
        self.requestID = requestID
        self.userAgent = userAgent
        self.downstreamAddress = downstreamAddress
        self.sourceService = sourceService
        self.destinationService = destinationService
        self.upstreamCluster = upstreamCluster
        self.upstreamAddress = upstreamAddress
        self.retries = retries
        self.failureReason = failureReason
        self.customTags = customTags
        self.parentInferred = parentInferred
    }
}
