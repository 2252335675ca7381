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
        forEachTag(of: hop, samplingPercent: samplingPercent) { attributes.append(Attribute($0.string, $1)) }
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
        w.key(unescaped: "traceId")
        w.append(traceID: hop.context.traceID)
        if let parent = hop.context.parentSpanID {
            w.key(unescaped: "parentId")
            w.append(spanID: parent)
        }
        w.key(unescaped: "id")
        w.append(spanID: hop.context.spanID)
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
            switch key {
            case .fixed(let name): w.key(unescaped: name)
            case .custom(let name): w.key(name)
            }
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
    func forEachTag(of hop: HopRecord, samplingPercent: Double, _ tag: (TagKey, AttributeValue) -> Void) {
        let status = hop.statusCode
        let flags = Self.flags(hop)
        let url = "http://" + hop.authority + truncated(hop.path)
        tag(.fixed("node_id"), .string(configuration.nodeID))
        tag(.fixed("zone"), .string(""))
        tag(.fixed("guid:x-request-id"), .string(hop.requestID))
        tag(.fixed("http.url"), .string(url))
        tag(.fixed("http.method"), .string(hop.method))
        tag(.fixed("http.protocol"), .string(hop.httpProtocol))
        tag(.fixed("downstream_cluster"), .string(hop.direction == .inbound ? hop.sourceService ?? "-" : "-"))
        tag(.fixed("user_agent"), .string(hop.userAgent ?? "-"))
        tag(.fixed("request_size"), .int(Int64(hop.requestBytes)))
        tag(.fixed("response_size"), .int(Int64(hop.responseBytes)))
        tag(.fixed("response_flags"), .string(flags))
        tag(.fixed("component"), .string("proxy"))
        tag(.fixed("istio.canonical_service"), .string(configuration.serviceName))
        tag(.fixed("istio.namespace"), .string(configuration.namespace))
        // OpenTelemetry semantic conventions
        tag(.fixed("http.request.method"), .string(hop.method))
        tag(.fixed("url.full"), .string(url))
        tag(.fixed("http.request.body.size"), .int(Int64(hop.requestBytes)))
        tag(.fixed("http.response.body.size"), .int(Int64(hop.responseBytes)))
        tag(.fixed("sampling.rate"), .double(samplingPercent / 100))
        if let peer = hop.downstreamAddress { tag(.fixed("peer.address"), .string(peer)) }
        if let ua = hop.userAgent { tag(.fixed("user_agent.original"), .string(ua)) }
        if let cluster = hop.upstreamCluster {
            tag(.fixed("upstream_cluster"), .string(cluster))
            tag(.fixed("upstream_cluster.name"), .string(cluster))
        }
        if let upstream = hop.upstreamAddress {
            tag(.fixed("upstream_address"), .string(upstream))
            tag(.fixed("network.peer.address"), .string(upstream))
        }
        if let status {
            tag(.fixed("http.status_code"), .string(String(status)))
            tag(.fixed("http.response.status_code"), .int(Int64(status)))
        }
        if hop.retries > 0 {
            tag(.fixed("retry.count"), .int(Int64(hop.retries)))
            tag(.fixed("http.request.resend_count"), .int(Int64(hop.retries)))
        }
        if hop.direction != .inbound { tag(.fixed("peer.service"), .string(hop.destinationService)) }
        if hop.parentInferred { tag(.fixed("meshtrace.parent_inferred"), .bool(true)) }
        // What the propagation doctor compares (`meshtrace analyze`): formats that arrived, formats
        // handed to the app, and the caller's sampling decision.
        if let extracted = hop.propagationExtracted { tag(.fixed("meshtrace.propagation.extracted"), .string(extracted)) }
        if let injected = hop.propagationInjected { tag(.fixed("meshtrace.propagation.injected"), .string(injected)) }
        if let upstream = hop.upstreamSampled { tag(.fixed("meshtrace.sampling.upstream"), .bool(upstream)) }
        if Self.isError(hop) { tag(.fixed("error"), .string("true")) }
        for custom in hop.customTags where !custom.value.isEmpty { tag(.custom(custom.key), .string(custom.value)) }
    }

    /// A tag's name: one of the builder's own (a literal, written without escaping) or a
    /// user's custom tag.
    enum TagKey {
        case fixed(StaticString)
        case custom(String)

        var string: String {
            switch self {
            case .fixed(let name): return name.description
            case .custom(let name): return name
            }
        }
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
        // Characters never outnumber bytes: a path short in bytes needs no (slow) character count.
        if path.utf8.count <= configuration.maxPathTagLength { return path }
        return path.count <= configuration.maxPathTagLength ? path : String(path.prefix(configuration.maxPathTagLength))
    }

    // By bytes: ':' is ASCII, and a Character search would run grapheme breaking per span.
    static func host(of address: String?) -> String? {
        guard let address, let colon = address.utf8.lastIndex(of: UInt8(ascii: ":")) else { return address }
        return String(address[..<colon])
    }

    static func port(of address: String?) -> Int? {
        guard let address, let colon = address.utf8.lastIndex(of: UInt8(ascii: ":")) else { return nil }
        return Int(address[address.utf8.index(after: colon)...])
    }
}
