import TraceModel

/// Shared by the OTLP protobuf and JSON codecs: id validation, kinds, endpoints, grouping.
package enum OTLP {
    /// Why one span is dropped (the rest of the request is kept).
    package struct Rejection: Error {
        package var reason: String
        package init(_ reason: String) { self.reason = reason }
    }

    package static let defaultServiceName = "unknown_service"

    package static func traceID<C: Collection>(_ b: C, field: String = "traceId") throws(Rejection) -> TraceID where C.Element == UInt8 {
        guard b.count == 16, let id = TraceIDParse.bytes(b) else {
            throw Rejection("\(field): must be 16 bytes, got \(b.count)")
        }
        guard id.isValid else { throw Rejection("\(field): all-zero trace id is invalid") }
        return id
    }

    package static func spanID<C: Collection>(_ b: C, field: String = "spanId") throws(Rejection) -> SpanID where C.Element == UInt8 {
        guard let v = TraceIDParse.spanValue(b) else { throw Rejection("\(field): must be 8 bytes, got \(b.count)") }
        guard let id = SpanID(v) else { throw Rejection("\(field): all-zero span id is invalid") }
        return id
    }

    /// Empty (or all-zero) means root.
    package static func parentID<C: Collection>(_ b: C) throws(Rejection) -> SpanID? where C.Element == UInt8 {
        if b.isEmpty { return nil }
        guard let v = TraceIDParse.spanValue(b) else { throw Rejection("parentSpanId: must be empty or 8 bytes, got \(b.count)") }
        return SpanID(v)
    }

    package static func duration(start: UInt64, end: UInt64) throws(Rejection) -> UInt64 {
        guard end >= start else { throw Rejection("endTimeUnixNano (\(end)) is before startTimeUnixNano (\(start))") }
        return end - start
    }

    package static func kind(_ raw: Int) -> SpanKind { SpanKind(rawValue: UInt8(clamping: raw < 0 ? 0 : raw)) ?? .unspecified }

    package static func statusCode(_ raw: Int) -> SpanStatus.Code {
        switch raw {
        case 1: return .ok
        case 2: return .error
        default: return .unset
        }
    }

    /// Enum names accepted leniently where OTLP JSON requires integers.
    static func kind(name: String) -> SpanKind {
        switch name {
        case "SPAN_KIND_INTERNAL", "INTERNAL": return .internal
        case "SPAN_KIND_SERVER", "SERVER": return .server
        case "SPAN_KIND_CLIENT", "CLIENT": return .client
        case "SPAN_KIND_PRODUCER", "PRODUCER": return .producer
        case "SPAN_KIND_CONSUMER", "CONSUMER": return .consumer
        default: return .unspecified
        }
    }

    static func statusCode(name: String) -> SpanStatus.Code {
        switch name {
        case "STATUS_CODE_OK", "OK": return .ok
        case "STATUS_CODE_ERROR", "ERROR": return .error
        default: return .unset
        }
    }

    /// Zipkin-style remote endpoint from OTel semantic attributes: `peer.service` names the service,
    /// `network.peer.address`/`net.peer.ip` and `network.peer.port`/`net.peer.port` give address and port.
    package static func remoteEndpoint(_ attributes: [Attribute]) -> Endpoint? {
        var e = Endpoint()
        for a in attributes {
            // Every key below starts with "p" or "n": one byte rules out most attributes
            // before any string comparison (a sidecar span has about 35).
            let first = a.key.utf8.first
            guard first == UInt8(ascii: "p") || first == UInt8(ascii: "n") else { continue }
            switch a.key {
            case "peer.service":
                if case .string(let s) = a.value, !s.isEmpty { e.serviceName = s }
            case "network.peer.address", "net.peer.ip", "net.sock.peer.addr":
                if case .string(let s) = a.value {
                    if IPAddress.ipv4Bytes(s) != nil { e.ipv4 = s } else if IPAddress.ipv6Bytes(s) != nil { e.ipv6 = s }
                }
            case "network.peer.port", "net.peer.port", "net.sock.peer.port":
                switch a.value {
                case .int(let p) where (1...65535).contains(p): e.port = Int(p)
                case .string(let s): if let p = Int(s), (1...65535).contains(p) { e.port = p }
                default: break
                }
            default: break
            }
        }
        return e.isEmpty ? nil : e
    }

    /// Span attributes for export: the model's attributes plus the remote endpoint as OTel attributes
    /// when they are not already there (spans that came in as Zipkin).
    package static func exportAttributes(_ s: Span) -> [Attribute] {
        let extra = endpointAttributes(s)
        return extra.isEmpty ? s.attributes : s.attributes + extra
    }

    /// The remote endpoint as the OTel attributes the span does not already carry, written after
    /// its own. One pass over the attributes with a first-byte check: asking for each key in turn
    /// (`contains` over ~35 sidecar attributes, three times) was 10 % of the sidecar's OTLP
    /// export thread in string comparison (callgrind, 2026-12-07), and copying the attribute
    /// array to append to it cost a retain and release of every key and value.
    package static func endpointAttributes(_ s: Span) -> [Attribute] {
        guard let r = s.remoteEndpoint, !r.isEmpty else { return [] }
        var hasService = false, hasAddress = false, hasPort = false
        for a in s.attributes {
            let first = a.key.utf8.first
            guard first == UInt8(ascii: "p") || first == UInt8(ascii: "n") else { continue }
            switch a.key {
            case "peer.service": hasService = true
            case "network.peer.address", "net.peer.ip", "net.sock.peer.addr": hasAddress = true
            case "network.peer.port", "net.peer.port", "net.sock.peer.port": hasPort = true
            default: break
            }
        }
        var extra: [Attribute] = []
        if let name = r.serviceName, !hasService { extra.append(Attribute("peer.service", .string(name))) }
        if let ip = r.ipv4 ?? r.ipv6, !hasAddress { extra.append(Attribute("network.peer.address", .string(ip))) }
        if let port = r.port, !hasPort { extra.append(Attribute("network.peer.port", .int(Int64(port)))) }
        return extra
    }

    package struct ResourceKey: Hashable {
        package var service: String
        package var resource: [Attribute]
    }

    package struct ResourceGroup {
        package var key: ResourceKey
        package var scopes: [(scope: InstrumentationScope?, spans: [Span])]
    }

    /// Spans grouped by (service, resource), then by scope, in order of first appearance.
    package static func group(_ spans: [Span]) -> [ResourceGroup] {
        var groups = [ResourceGroup]()
        var index = [ResourceKey: Int]()
        var scopeIndex = [[InstrumentationScope?: Int]]()
        for s in spans {
            let key = ResourceKey(service: s.serviceName, resource: s.resource)
            let g: Int
            if let i = index[key] {
                g = i
            } else {
                g = groups.count
                index[key] = g
                groups.append(ResourceGroup(key: key, scopes: []))
                scopeIndex.append([:])
            }
            if let si = scopeIndex[g][s.scope] {
                groups[g].scopes[si].spans.append(s)
            } else {
                scopeIndex[g][s.scope] = groups[g].scopes.count
                groups[g].scopes.append((s.scope, [s]))
            }
        }
        return groups
    }

    package static func location(_ r: Int, _ s: Int, _ k: Int) -> String {
        "resourceSpans[\(r)].scopeSpans[\(s)].spans[\(k)]"
    }
}
