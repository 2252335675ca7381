import Logging
import NIOCore
import NIOHTTP1
import TraceModel

/// One request/response through one listener: what was asked, where it went, what came back.
final class Exchange {
    var hop: HopRecord
    /// The configuration this request started under; every later decision for it reads this one.
    let snapshot: ConfigurationBox.Snapshot
    let startMono: UInt64
    let requestVersion: HTTPVersion
    let requestFraming: BodyFraming
    var upstreamHead: UpstreamRequestHead
    var target: UpstreamTarget?
    var cluster: ClusterState?
    /// A service with several endpoints: its shared state, the endpoint of the current attempt,
    /// and every endpoint tried so far (`ProxyHandler+Balancing.swift`).
    var endpointSet: EndpointSet?
    var endpointIndex: Int?
    var triedEndpoints: [Int] = []
    var pool: UpstreamPool?
    var connection: UpstreamConnection?
    var waiterID: Int?
    /// Request parts that arrived before the upstream connection was ready.
    var buffered: [UpstreamRequestPart] = []
    var requestEnded = false
    var requestFullySent = false
    var responseStarted = false
    var responseDone = false
    var upstreamKeepAlive = true
    /// The request body is being thrown away (a local reply was sent).
    var discarding = false
    var retriedStale = false
    /// The upstream answered with a status that is retried: its body is dropped, and the request
    /// goes out again when it ends.
    var discardingResponse = false
    /// The request body as sent, kept (as buffer references) so a status retry can send it again;
    /// given up once it passes `RetryPolicy.replayLimit`.
    var replay: [ByteBuffer] = []
    var replayBytes = 0
    var replayable = true
    var replayTrailers: HTTPHeaders?
    var holdingRetrySlot = false
    /// An attempt's per-try timer is running (cleared by its response head or its end).
    var tryStarted = false
    var freshConnection = false
    var timerStarted = false
    var retryTask: Scheduled<Void>?
    var recorded = false
    /// When the response's last part was handed to the channel (monotonic), if it was.
    var endMono: UInt64?
    /// Inbound only, with parent inference on: this request's registration in `ParentInference`.
    var inferenceToken: Int?
    /// A CONNECT request: once its target answers, the connection carries raw bytes both ways.
    var isTunnel = false
    /// The tunnel's upstream end, once connected.
    var tunnel: TunnelHandler?
    /// The next periodic report of the tunnel's bytes to the TCP metrics.
    var tunnelReport: Scheduled<Void>?
    /// Client bytes that arrived before the tunnel's target answered.
    var tunnelPending: [ByteBuffer] = []
    /// A CONNECT to a service of the mesh (its route), whose first bytes are watched for the
    /// HTTP/2 preface: gRPC clients reach `host:port` through `http_proxy` this way.
    var connectRoute: Route?
    var connectPreface: HTTP2PrefaceProbe?
    /// An HTTP/2 target's first bytes (its SETTINGS), held while `connectPreface` waits for the
    /// client's: an h2 server may speak first (RFC 9113 3.4), which must not end the probe.
    var heldUpstream: [ByteBuffer] = []
    /// A WebSocket handshake: relayed as a tunnel whose first bytes are the request head, the
    /// answer read only for its status line (101 when the app switched).
    var isUpgrade = false
    /// The start of the app's answer, until its status line is complete.
    var statusLinePrefix: [UInt8] = []

    /// The record, moved out for telemetry once the exchange is reported (a copy would retain
    /// and later release each of its strings); what is left holds only the span context.
    func takeHop() -> HopRecord {
        var taken = HopRecord(
            direction: hop.direction, context: hop.context, sampled: false, startNanos: 0, durationNanos: 0, method: "", path: "",
            authority: "", statusCode: nil, requestID: "", destinationService: "")
        swap(&taken, &hop)
        return taken
    }

    init(hop: HopRecord, snapshot: ConfigurationBox.Snapshot, startMono: UInt64, requestVersion: HTTPVersion, requestFraming: BodyFraming,
         upstreamHead: UpstreamRequestHead) {
        self.hop = hop
        self.snapshot = snapshot
        self.startMono = startMono
        self.requestVersion = requestVersion
        self.requestFraming = requestFraming
        self.upstreamHead = upstreamHead
    }
}
