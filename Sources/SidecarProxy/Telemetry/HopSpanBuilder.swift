import TraceModel

/// Turns one `HopRecord` into the span Envoy/Istio would have reported, with Envoy's tag
/// names plus the OpenTelemetry semantic-convention names, so both Jaeger-era dashboards and
/// OTel-era queries find what they expect.
public struct HopSpanBuilder: Sendable {
    public var configuration: TelemetryConfiguration

    public init(configuration: TelemetryConfiguration) {
        self.configuration = configuration
    }

    /// - Parameter samplingPercent: the rate in force when the decision was made, recorded as
    ///   `sampling.rate` (0...1) so the backend can scale counts back up.
    public func span(for hop: HopRecord, samplingPercent: Double) -> Span {
        let status = hop.statusCode
        let flags = hop.responseFlags.isEmpty ? "-" : hop.responseFlags.joined(separator: ",")
        let isError = status.map { $0 >= 500 } ?? true
        let url = "http://" + hop.authority + truncated(hop.path)

        var attributes: [Attribute] = [
            Attribute("node_id", .string(configuration.nodeID)),
            Attribute("zone", .string("")),
            Attribute("guid:x-request-id", .string(hop.requestID)),
            Attribute("http.url", .string(url)),
            Attribute("http.method", .string(hop.method)),
            Attribute("http.protocol", .string(hop.httpProtocol)),
            Attribute("downstream_cluster", .string(hop.direction == .inbound ? hop.sourceService ?? "-" : "-")),
            Attribute("user_agent", .string(hop.userAgent ?? "-")),
            Attribute("request_size", .int(Int64(hop.requestBytes))),
            Attribute("response_size", .int(Int64(hop.responseBytes))),
            Attribute("response_flags", .string(flags)),
            Attribute("component", .string("proxy")),
            Attribute("istio.canonical_service", .string(configuration.serviceName)),
            Attribute("istio.namespace", .string(configuration.namespace)),
            // OpenTelemetry semantic conventions
            Attribute("http.request.method", .string(hop.method)),
            Attribute("url.full", .string(url)),
            Attribute("http.request.body.size", .int(Int64(hop.requestBytes))),
            Attribute("http.response.body.size", .int(Int64(hop.responseBytes))),
            Attribute("sampling.rate", .double(samplingPercent / 100)),
        ]
        if let peer = hop.downstreamAddress { attributes.append(Attribute("peer.address", .string(peer))) }
        if let ua = hop.userAgent { attributes.append(Attribute("user_agent.original", .string(ua))) }
        if let cluster = hop.upstreamCluster {
            attributes.append(Attribute("upstream_cluster", .string(cluster)))
            attributes.append(Attribute("upstream_cluster.name", .string(cluster)))
        }
        if let upstream = hop.upstreamAddress {
            attributes.append(Attribute("upstream_address", .string(upstream)))
            attributes.append(Attribute("network.peer.address", .string(upstream)))
        }
        if let status {
            attributes.append(Attribute("http.status_code", .string(String(status))))
            attributes.append(Attribute("http.response.status_code", .int(Int64(status))))
        }
        if hop.retries > 0 {
            attributes.append(Attribute("retry.count", .int(Int64(hop.retries))))
            attributes.append(Attribute("http.request.resend_count", .int(Int64(hop.retries))))
        }
        if hop.direction != .inbound { attributes.append(Attribute("peer.service", .string(hop.destinationService))) }
        if hop.parentInferred { attributes.append(Attribute("meshtrace.parent_inferred", .bool(true))) }
        // What the propagation doctor compares (`meshtrace analyze`): formats that arrived, formats
        // handed to the app, and the caller's sampling decision.
        if let extracted = hop.propagationExtracted { attributes.append(Attribute("meshtrace.propagation.extracted", .string(extracted))) }
        if let injected = hop.propagationInjected { attributes.append(Attribute("meshtrace.propagation.injected", .string(injected))) }
        if let upstream = hop.upstreamSampled { attributes.append(Attribute("meshtrace.sampling.upstream", .bool(upstream))) }
        if isError { attributes.append(Attribute("error", .string("true"))) }
        for tag in hop.customTags where !tag.value.isEmpty { attributes.append(Attribute(tag.key, .string(tag.value))) }

        var events: [SpanEvent] = []
        if let reason = hop.failureReason {
            events.append(SpanEvent(timeNanos: hop.startNanos + hop.durationNanos, name: "proxy failure",
                                    attributes: [Attribute("message", .string(reason)), Attribute("response_flags", .string(flags))]))
        }

        let kind: SpanKind = hop.direction == .inbound ? .server : .client
        let remote: Endpoint
        switch hop.direction {
        case .inbound:
            remote = Endpoint(serviceName: hop.sourceService, ipv4: Self.host(of: hop.downstreamAddress), port: Self.port(of: hop.downstreamAddress))
        case .outbound, .gateway:
            remote = Endpoint(serviceName: hop.destinationService, ipv4: Self.host(of: hop.upstreamAddress), port: Self.port(of: hop.upstreamAddress))
        }
        return Span(
            traceID: hop.context.traceID,
            spanID: hop.context.spanID,
            parentSpanID: hop.context.parentSpanID,
            kind: kind,
            name: configuration.naming.name(method: hop.method, path: hop.path),
            startTimeNanos: hop.startNanos,
            durationNanos: max(hop.durationNanos, 1_000),
            serviceName: configuration.serviceName,
            resource: [Attribute("meshtrace.proxy", .string(hop.direction.rawValue))],
            attributes: attributes,
            events: events,
            status: isError ? .error(hop.failureReason ?? status.map { "HTTP \($0)" } ?? "no response") : .unset,
            remoteEndpoint: remote.isEmpty ? nil : remote,
            traceState: hop.context.traceState,
            debug: hop.context.debug
        )
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
