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
        var attributes: [Attribute] = []
        attributes.reserveCapacity(32)
        forEachTag(of: hop, samplingPercent: samplingPercent) { attributes.append(Attribute($0, $1)) }
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
            attributes: attributes,
            events: failureEvent(of: hop).map { [$0] } ?? [],
            status: Self.isError(hop) ? .error(hop.failureReason ?? status.map { "HTTP \($0)" } ?? "no response") : .unset,
            remoteEndpoint: remote.isEmpty ? nil : remote,
            traceState: hop.context.traceState,
            debug: hop.context.debug
        )
    }

    /// `span(for:)` as a Zipkin v2 JSON object, appended to `w`: exactly the bytes
    /// `ZipkinJSON.write(span(for: hop, …))` produces.
    public func writeZipkin(_ hop: HopRecord, samplingPercent: Double, to w: inout JSONWriter) {
        w.beginObject()
        w.member("traceId", hop.context.traceID.hex)
        if let parent = hop.context.parentSpanID { w.member("parentId", parent.hex) }
        w.member("id", hop.context.spanID.hex)
        w.member("kind", hop.direction == .inbound ? "SERVER" : "CLIENT")
        let name = configuration.naming.name(method: hop.method, path: hop.path)
        if !name.isEmpty { w.member("name", name) }
        if hop.startNanos > 0 { w.member("timestamp", hop.startNanos / 1_000) }
        let duration = max(hop.durationNanos, 1_000)
        w.member("duration", duration / 1_000 + (duration % 1_000 == 0 ? 0 : 1))
        if !configuration.serviceName.isEmpty {
            w.key("localEndpoint")
            w.beginObject()
            w.member("serviceName", configuration.serviceName)
            w.endObject()
        }
        let remote = remoteEndpoint(of: hop)
        if !remote.isEmpty {
            w.key("remoteEndpoint")
            w.beginObject()
            if let s = remote.serviceName { w.member("serviceName", s) }
            if let s = remote.ipv4 { w.member("ipv4", s) }
            if let p = remote.port, p > 0 { w.member("port", p) }
            w.endObject()
        }
        if let event = failureEvent(of: hop) {
            w.key("annotations")
            w.beginArray()
            w.beginObject()
            w.member("timestamp", event.timeNanos / 1_000)
            w.member("value", ZipkinJSON.annotationValue(event))
            w.endObject()
            w.endArray()
        }
        w.key("tags")
        w.beginObject()
        forEachTag(of: hop, samplingPercent: samplingPercent) { key, value in
            w.key(key)
            switch value {
            case .string(let s): w.append(string: s)
            case .int(let i): w.append(quotedInt: i)  // Zipkin tags are strings
            default: w.append(string: value.description)
            }
        }
        w.endObject()
        if hop.context.debug { w.member("debug", true) }
        w.endObject()
    }

    /// Every tag of the hop's span, in order.
    func forEachTag(of hop: HopRecord, samplingPercent: Double, _ tag: (String, AttributeValue) -> Void) {
        let status = hop.statusCode
        let flags = Self.flags(hop)
        let url = "http://" + hop.authority + truncated(hop.path)
        tag("node_id", .string(configuration.nodeID))
        tag("zone", .string(""))
        tag("guid:x-request-id", .string(hop.requestID))
        tag("http.url", .string(url))
        tag("http.method", .string(hop.method))
        tag("http.protocol", .string(hop.httpProtocol))
        tag("downstream_cluster", .string(hop.direction == .inbound ? hop.sourceService ?? "-" : "-"))
        tag("user_agent", .string(hop.userAgent ?? "-"))
        tag("request_size", .int(Int64(hop.requestBytes)))
        tag("response_size", .int(Int64(hop.responseBytes)))
        tag("response_flags", .string(flags))
        tag("component", .string("proxy"))
        tag("istio.canonical_service", .string(configuration.serviceName))
        tag("istio.namespace", .string(configuration.namespace))
        // OpenTelemetry semantic conventions
        tag("http.request.method", .string(hop.method))
        tag("url.full", .string(url))
        tag("http.request.body.size", .int(Int64(hop.requestBytes)))
        tag("http.response.body.size", .int(Int64(hop.responseBytes)))
        tag("sampling.rate", .double(samplingPercent / 100))
        if let peer = hop.downstreamAddress { tag("peer.address", .string(peer)) }
        if let ua = hop.userAgent { tag("user_agent.original", .string(ua)) }
        if let cluster = hop.upstreamCluster {
            tag("upstream_cluster", .string(cluster))
            tag("upstream_cluster.name", .string(cluster))
        }
        if let upstream = hop.upstreamAddress {
            tag("upstream_address", .string(upstream))
            tag("network.peer.address", .string(upstream))
        }
        if let status {
            tag("http.status_code", .string(String(status)))
            tag("http.response.status_code", .int(Int64(status)))
        }
        if hop.retries > 0 {
            tag("retry.count", .int(Int64(hop.retries)))
            tag("http.request.resend_count", .int(Int64(hop.retries)))
        }
        if hop.direction != .inbound { tag("peer.service", .string(hop.destinationService)) }
        if hop.parentInferred { tag("meshtrace.parent_inferred", .bool(true)) }
        // What the propagation doctor compares (`meshtrace analyze`): formats that arrived, formats
        // handed to the app, and the caller's sampling decision.
        if let extracted = hop.propagationExtracted { tag("meshtrace.propagation.extracted", .string(extracted)) }
        if let injected = hop.propagationInjected { tag("meshtrace.propagation.injected", .string(injected)) }
        if let upstream = hop.upstreamSampled { tag("meshtrace.sampling.upstream", .bool(upstream)) }
        if Self.isError(hop) { tag("error", .string("true")) }
        for custom in hop.customTags where !custom.value.isEmpty { tag(custom.key, .string(custom.value)) }
    }

    /// 5xx, or no response at all (upstream failure, client gone).
    static func isError(_ hop: HopRecord) -> Bool { hop.statusCode.map { $0 >= 500 } ?? true }

    static func flags(_ hop: HopRecord) -> String { hop.responseFlags.isEmpty ? "-" : hop.responseFlags.joined(separator: ",") }

    private func failureEvent(of hop: HopRecord) -> SpanEvent? {
        guard let reason = hop.failureReason else { return nil }
        return SpanEvent(timeNanos: hop.startNanos + hop.durationNanos, name: "proxy failure",
                         attributes: [Attribute("message", .string(reason)), Attribute("response_flags", .string(Self.flags(hop)))])
    }

    private func remoteEndpoint(of hop: HopRecord) -> Endpoint {
        switch hop.direction {
        case .inbound:
            return Endpoint(serviceName: hop.sourceService, ipv4: Self.host(of: hop.downstreamAddress), port: Self.port(of: hop.downstreamAddress))
        case .outbound, .gateway:
            return Endpoint(serviceName: hop.destinationService, ipv4: Self.host(of: hop.upstreamAddress), port: Self.port(of: hop.upstreamAddress))
        }
    }

    private func truncated(_ path: String) -> String {
        path.count <= configuration.maxPathTagLength ? path : String(path.prefix(configuration.maxPathTagLength))
    }

    static func host(of address: String?) -> String? {
        guard let address, let colon = address.lastIndex(of: ":") else { return address }
        return String(address[..<colon])
    }

    static func port(of address: String?) -> Int? {
        guard let address, let colon = address.lastIndex(of: ":") else { return nil }
        return Int(address[address.index(after: colon)...])
    }
}
