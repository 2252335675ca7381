import Hummingbird

/// THE LESSON OF THE DEMO.
///
/// The sidecars make a span for every hop, but only the application knows which incoming
/// request caused which outgoing call. So every service copies these headers from the request
/// it is serving onto each request it makes while serving it. That is all it takes for the
/// sidecars' spans to join into one trace; forget it (`--broken`) and the trace breaks in two.
/// This is the same list Istio asks applications to forward.
public enum HeaderForwarding {
    public static let headers = [
        "x-request-id",  // the mesh's request id: ties access logs to the trace
        "traceparent", "tracestate",  // W3C Trace Context (OpenTelemetry)
        "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",  // Zipkin B3, multi-header
        "b3",  // Zipkin B3, single header
        "baggage",  // W3C baggage: application key/values that ride along
    ]

    /// The headers of `incoming` to send on the outgoing call, in the list's order.
    public static func forwarded(from incoming: HTTPFields) -> [(String, String)] {
        headers.compactMap { name in
            guard let value = value(of: name, in: incoming) else { return nil }
            return (name, value)
        }
    }

    /// All lines of header `name` joined by commas (RFC 9110's combination rule), or nil.
    static func value(of name: String, in fields: HTTPFields) -> String? {
        let values = fields.filter { $0.name.canonicalName == name.lowercased() }.map(\.value)
        return values.isEmpty ? nil : values.joined(separator: ",")
    }
}

/// The broken backend's record of true causality, sent only when asked for
/// (`meshtrace demo --broken --record-causality`): on each call to database it sends the
/// x-request-id of the request it is serving in this header (which is not a trace header, so
/// the trace still breaks), and the sidecars tag it onto spans as `demo.caused_by`, so a test
/// can compare every inferred parent link with what really happened.
public enum DemoCausality {
    public static let header = "x-demo-caused-by"
}
