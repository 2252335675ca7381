import TraceModel
import TraceWire

/// Turns one `HopRecord` into the span Envoy/Istio would have reported, with Envoy's tag
/// names plus the OpenTelemetry semantic-convention names, so both Jaeger-era dashboards and
/// OTel-era queries find what they expect.
///
/// Two outputs from one description: a `Span` (OTLP export, tests), and the same span written
/// straight as a Zipkin v2 JSON object, which is the sidecar's per-request path: no span model
/// in between saves building and freeing some thirty strings and arrays per request. Both read
/// the tag list from `forEachTag`, and a test holds them byte-for-byte equal.
public struct HopSpanBuilder: Sendable {
    public var configuration: TelemetryConfiguration

    public init(configuration: TelemetryConfiguration) {
        self.configuration = configuration
    }

    /// - Parameter samplingPercent: the rate in force when the decision was made, recorded as
    ///   `sampling.rate` (0...1) so the backend can scale counts back up.
    public func span(for hop: HopRecord, samplingPercent: Double) -> Span {
        var attributes = AttributeList()
        attributes.list.reserveCapacity(32)
        forEachTag(of: hop, samplingPercent: samplingPercent, into: &attributes)
        let status = hop.statusCode
        let remote = remoteEndpoint(of: hop)
        return Span(
            traceID: hop.context.traceID,
            spanID: hop.context.spanID,
            parentSpanID: hop.context.parentSpanID,
            kind: hop.direction == .inbound ? .server : .client,
            name: configuration.naming.name(method: hop.method, path: hop.path),
            startTimeNanos: hop.startNanos,
            durationNanos: max(hop.durationNanos, 1_000),
            serviceName: configuration.serviceName,
            resource: [Attribute("meshtrace.proxy", .string(hop.direction.rawValue))],
            attributes: attributes.list,
            events: failureEvent(of: hop).map { [$0] } ?? [],
            status: Self.isError(hop) ? .error(hop.failureReason ?? status.map { "HTTP \($0)" } ?? "no response") : .unset,
            remoteEndpoint: remote.isEmpty ? nil : remote,
            traceState: hop.context.traceState,
            debug: hop.context.debug
        )
    }

    /// `span(for:)` as a Zipkin v2 JSON object, appended to `w`: exactly the bytes
    /// `ZipkinJSON.write(span(for: hop, …))` produces, written without building the strings
    /// (URL, span name, endpoint host) the model needs.
    public func writeZipkin(_ hop: HopRecord, samplingPercent: Double, to w: inout JSONWriter) {
        w.beginObject()
        w.key(unescaped: "traceId")
        w.append(traceID: hop.context.traceID)
        if let parent = hop.context.parentSpanID {
            w.key(unescaped: "parentId")
            w.append(spanID: parent)
        }
        w.key(unescaped: "id")
        w.append(spanID: hop.context.spanID)
        w.key(unescaped: "kind")
        w.append(string: hop.direction == .inbound ? "SERVER" : "CLIENT")
        w.key(unescaped: "name")
        w.beginString()
        w.appendStringContent(hop.method)
        w.appendStringContent(" ")
        configuration.naming.withRoute(hop.path, method: hop.method) { w.appendStringContent($0) }
        w.endString()
        if hop.startNanos > 0 {
            w.key(unescaped: "timestamp")
            w.append(uint: hop.startNanos / 1_000)
        }
        let duration = max(hop.durationNanos, 1_000)
        w.key(unescaped: "duration")
        w.append(uint: duration / 1_000 + (duration % 1_000 == 0 ? 0 : 1))
        if !configuration.serviceName.isEmpty {
            w.key(unescaped: "localEndpoint")
            w.beginObject()
            w.key(unescaped: "serviceName")
            w.append(string: configuration.serviceName)
            w.endObject()
        }
        writeRemoteEndpoint(of: hop, to: &w)
        if let event = failureEvent(of: hop) {
            w.key(unescaped: "annotations")
            w.beginArray()
            w.beginObject()
            w.member("timestamp", event.timeNanos / 1_000)
            w.member("value", ZipkinJSON.annotationValue(event))
            w.endObject()
            w.endArray()
        }
        w.key(unescaped: "tags")
        w.beginObject()
        forEachTag(of: hop, samplingPercent: samplingPercent, into: &w)
        w.endObject()
        if hop.context.debug { w.member("debug", true) }
        w.endObject()
    }

    /// `remoteEndpoint(of:)` written as Zipkin JSON, the host and port read as slices of the
    /// address.
    private func writeRemoteEndpoint(of hop: HopRecord, to w: inout JSONWriter) {
        let (serviceName, address) = Self.remote(of: hop)
        let parts = address.map(Self.split)
        let family = parts.map { Self.ipFamily(of: $0.host) } ?? .none
        // Empty as `Endpoint.isEmpty` has it, so both writers leave out the same endpoints.
        guard serviceName != nil || family != .none || parts?.port != nil else { return }
        w.key(unescaped: "remoteEndpoint")
        w.beginObject()
        if let serviceName {
            w.key(unescaped: "serviceName")
            w.append(string: serviceName)
        }
        if let parts {
            switch family {
            case .v4:
                w.key(unescaped: "ipv4")
                w.append(string: parts.host)
            case .v6(let text):
                w.key(unescaped: "ipv6")
                w.append(string: text)
            case .none:
                break
            }
            if let port = parts.port, port > 0 {
                w.key(unescaped: "port")
                w.append(int: port)
            }
        }
        w.endObject()
    }

    enum IPFamily: Equatable {
        case v4
        case v6(Substring)
        case none
    }

    /// Zipkin endpoints carry IP addresses only, IPv4 and IPv6 apart; a host name (an upstream
    /// given as `name:port`) stays in the `upstream_address` tag.
    static func ipFamily(of host: Substring) -> IPFamily {
        if IPAddress.ipv4Value(host) != nil { return .v4 }
        var text = host
        if text.hasPrefix("["), text.hasSuffix("]") { text = text.dropFirst().dropLast() }
        return IPAddress.ipv6Bytes(text) != nil ? .v6(text) : .none
    }

    /// Every tag of the hop's span, in order.
    func forEachTag(of hop: HopRecord, samplingPercent: Double, into sink: inout some HopTagSink) {
        let path = truncated(hop.path)
        sink.tag("node_id", configuration.nodeID)
        sink.tag("zone", "")
        sink.tag("guid:x-request-id", hop.requestID)
        // A CONNECT tunnel's target is `host:port` (its path here): no scheme, TLS usually follows.
        // An h2c connection refused for want of a destination has path `*`, as in the HTTP/2 preface.
        let tunnel = hop.isTunnel || hop.method == "CONNECT"
        // What the app asked for: a call to a per-upstream egress listener (`DATABASE_URL`,
        // http://127.0.0.1:45435) is a call to `database`; the address it dialed goes to
        // server.address and server.port below.
        let dialed = Self.dialedAddress(of: hop)
        let authority = dialed == nil ? hop.authority : hop.destinationService
        if tunnel { sink.tag("http.url", hop.path) } else { sink.tag("http.url", httpURL: authority, path) }
        sink.tag("http.method", hop.method)
        sink.tag("http.protocol", hop.httpProtocol)
        sink.tag("downstream_cluster", hop.direction == .inbound ? hop.sourceService ?? "-" : "-")
        sink.tag("user_agent", hop.userAgent ?? "-")
        sink.tag("request_size", int: hop.requestBytes)
        sink.tag("response_size", int: hop.responseBytes)
        sink.tag("response_flags", Self.flags(hop))
        sink.tag("component", "proxy")
        sink.tag("istio.canonical_service", configuration.serviceName)
        sink.tag("istio.namespace", configuration.namespace)
        // OpenTelemetry semantic conventions
        sink.tag("http.request.method", hop.method)
        if tunnel { sink.tag("url.full", hop.path) } else { sink.tag("url.full", httpURL: authority, path) }
        if let dialed {
            sink.tag("server.address", String(dialed.host))
            if let port = dialed.port { sink.tag("server.port", int: port) }
        }
        sink.tag("http.request.body.size", int: hop.requestBytes)
        sink.tag("http.response.body.size", int: hop.responseBytes)
        sink.tag("sampling.rate", double: samplingPercent / 100)
        if let peer = hop.downstreamAddress { sink.tag("peer.address", peer) }
        if let ua = hop.userAgent { sink.tag("user_agent.original", ua) }
        if let cluster = hop.upstreamCluster {
            sink.tag("upstream_cluster", cluster)
            sink.tag("upstream_cluster.name", cluster)
        }
        if let upstream = hop.upstreamAddress {
            sink.tag("upstream_address", upstream)
            sink.tag("network.peer.address", upstream)
        }
        if let status = hop.statusCode {
            sink.tag("http.status_code", decimal: status)
            sink.tag("http.response.status_code", int: status)
        }
        if let grpc = hop.grpcStatus {
            sink.tag("grpc.status_code", decimal: grpc)  // Envoy's tag
            sink.tag("rpc.grpc.status_code", int: grpc)
        }
        if hop.isGRPC { sink.tag("rpc.system", "grpc") }
        if hop.retries > 0 {
            sink.tag("retry.count", int: hop.retries)
            sink.tag("http.request.resend_count", int: hop.retries)
        }
        if hop.direction != .inbound { sink.tag("peer.service", hop.destinationService) }
        if hop.parentInferred { sink.tag("meshtrace.parent_inferred", bool: true) }
        // What the propagation doctor compares (`meshtrace analyze`): formats that arrived, formats
        // handed to the app, and the caller's sampling decision.
        if let extracted = hop.propagationExtracted { sink.tag("meshtrace.propagation.extracted", extracted) }
        if let injected = hop.propagationInjected { sink.tag("meshtrace.propagation.injected", injected) }
        if let disagreed = hop.propagationDisagreed { sink.tag("meshtrace.propagation.disagreed", disagreed) }
        // A SkyWalking trace id we had to hash: the original, to find the trace by it.
        if let original = hop.context.sw8TraceID { sink.tag("sw8.trace_id", original) }
        if let upstream = hop.upstreamSampled { sink.tag("meshtrace.sampling.upstream", bool: upstream) }
        if Self.isError(hop) { sink.tag("error", "true") }
        for custom in hop.customTags where !custom.value.isEmpty { sink.customTag(custom.key, custom.value) }
    }

    /// 5xx, or no response at all (upstream failure, client gone); for gRPC also the statuses
    /// that gRPC's HTTP mapping makes server errors (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED,
    /// INTERNAL, UNAVAILABLE, DATA_LOSS), which arrive under HTTP 200.
    static func isError(_ hop: HopRecord) -> Bool {
        if let grpc = hop.grpcStatus, [2, 4, 12, 13, 14, 15].contains(grpc) { return true }
        return hop.statusCode.map { $0 >= 500 } ?? true
    }

    static func flags(_ hop: HopRecord) -> String { hop.responseFlags.isEmpty ? "-" : hop.responseFlags.joined(separator: ",") }

    func failureEvent(of hop: HopRecord) -> SpanEvent? {
        guard let reason = hop.failureReason else { return nil }
        return SpanEvent(timeNanos: hop.startNanos + hop.durationNanos, name: "proxy failure",
                         attributes: [Attribute("message", .string(reason)), Attribute("response_flags", .string(Self.flags(hop)))])
    }

    private func remoteEndpoint(of hop: HopRecord) -> Endpoint {
        let (serviceName, address) = Self.remote(of: hop)
        let parts = address.map(Self.split)
        var endpoint = Endpoint(serviceName: serviceName, port: parts?.port)
        switch parts.map({ Self.ipFamily(of: $0.host) }) {
        case .v4?: endpoint.ipv4 = parts.map { String($0.host) }
        case .v6(let text)?: endpoint.ipv6 = String(text)
        case .none?, nil: break
        }
        return endpoint
    }

    /// Who is at the other end of the hop: the caller for inbound hops, the upstream otherwise.
    static func remote(of hop: HopRecord) -> (serviceName: String?, address: String?) {
        hop.direction == .inbound ? (hop.sourceService, hop.downstreamAddress) : (hop.destinationService, hop.upstreamAddress)
    }

    private func truncated(_ path: String) -> Substring {
        // Characters never outnumber bytes: a path short in bytes needs no (slow) character count.
        if path.utf8.count <= configuration.maxPathTagLength { return path[...] }
        return path.count <= configuration.maxPathTagLength ? path[...] : path.prefix(configuration.maxPathTagLength)
    }

    /// The address an outbound request named when it is not the service it reached: an app
    /// that called a mesh service through its `<NAME>_URL` listener by address. nil otherwise
    /// (the app named the service, or the call left the mesh).
    static func dialedAddress(of hop: HopRecord) -> (host: Substring, port: Int?)? {
        guard hop.direction == .outbound, !hop.isTunnel, !hop.authority.isEmpty,
              hop.upstreamCluster?.hasPrefix("outbound|") == true else { return nil }
        let address = split(hop.authority)
        return address.host == hop.destinationService ? nil : address
    }

    /// An "ip:port" address's parts (port nil when missing or not a number). By bytes: ':' is
    /// ASCII, and a Character search would run grapheme breaking per span.
    static func split(_ address: String) -> (host: Substring, port: Int?) {
        guard let colon = address.utf8.lastIndex(of: UInt8(ascii: ":")) else { return (address[...], nil) }
        return (address[..<colon], Int(address[address.utf8.index(after: colon)...]))
    }

    static func host(of address: String?) -> String? { address.map { String(split($0).host) } }

    static func port(of address: String?) -> Int? { address.flatMap { split($0).port } }
}

/// Where `HopSpanBuilder.forEachTag` puts each tag: the span model's attribute list, or Zipkin
/// JSON written straight into the batch. One tag list, two outputs, held byte-equal by a test.
/// The value kinds say what the model stores; Zipkin writes every value as a string.
protocol HopTagSink {
    mutating func tag(_ key: StaticString, _ value: String)
    /// A number attribute (`.int`).
    mutating func tag(_ key: StaticString, int value: Int)
    /// A string attribute holding a number, like Envoy's `http.status_code` ("200").
    mutating func tag(_ key: StaticString, decimal value: Int)
    mutating func tag(_ key: StaticString, double value: Double)
    mutating func tag(_ key: StaticString, bool value: Bool)
    /// `http://` + authority + path, as one string attribute.
    mutating func tag(_ key: StaticString, httpURL authority: String, _ path: Substring)
    mutating func customTag(_ key: String, _ value: String)
}

/// The span model's side: attributes as `Span` holds them.
struct AttributeList: HopTagSink {
    var list: [Attribute] = []

    mutating func tag(_ key: StaticString, _ value: String) { list.append(Attribute(key.description, .string(value))) }
    mutating func tag(_ key: StaticString, int value: Int) { list.append(Attribute(key.description, .int(Int64(value)))) }
    mutating func tag(_ key: StaticString, decimal value: Int) { list.append(Attribute(key.description, .string(String(value)))) }
    mutating func tag(_ key: StaticString, double value: Double) { list.append(Attribute(key.description, .double(value))) }
    mutating func tag(_ key: StaticString, bool value: Bool) { list.append(Attribute(key.description, .bool(value))) }
    mutating func tag(_ key: StaticString, httpURL authority: String, _ path: Substring) {
        list.append(Attribute(key.description, .string("http://" + authority + path)))
    }
    mutating func customTag(_ key: String, _ value: String) { list.append(Attribute(key, .string(value))) }
}

/// The Zipkin side: members of the `tags` object, each value a JSON string as
/// `AttributeValue.description` renders it.
extension JSONWriter: HopTagSink {
    mutating func tag(_ key: StaticString, _ value: String) {
        member(unescaped: key, value)
    }

    mutating func tag(_ key: StaticString, int value: Int) {
        self.key(unescaped: key)
        append(quotedInt: Int64(value))
    }

    mutating func tag(_ key: StaticString, decimal value: Int) {
        self.key(unescaped: key)
        append(quotedInt: Int64(value))
    }

    mutating func tag(_ key: StaticString, double value: Double) {
        self.key(unescaped: key)
        if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
            append(quotedInt: Int64(value))  // how `description` prints whole numbers
        } else {
            append(string: AttributeValue.double(value).description)
        }
    }

    mutating func tag(_ key: StaticString, bool value: Bool) {
        self.key(unescaped: key)
        beginString()
        appendStringContent(value ? "true" : "false")
        endString()
    }

    mutating func tag(_ key: StaticString, httpURL authority: String, _ path: Substring) {
        self.key(unescaped: key)
        beginString()
        appendStringContent("http://")
        appendStringContent(authority)
        appendStringContent(path)
        endString()
    }

    mutating func customTag(_ key: String, _ value: String) {
        self.key(key)
        append(string: value)
    }
}
