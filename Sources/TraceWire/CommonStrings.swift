/// Tag names that recur in nearly every span (the sidecar's Envoy/Istio and OpenTelemetry
/// names, and common instrumentation ones), handed out as shared literals when the bytes match.
/// Decoding builds a String for every tag name of every span; for these it is a length-bucketed
/// byte compare instead, with no allocation (most of them are longer than a small string holds).
enum CommonStrings {
    static let tagNames = [
        "node_id", "zone", "guid:x-request-id", "http.url", "http.method", "http.protocol", "downstream_cluster",
        "user_agent", "request_size", "response_size", "response_flags", "component", "istio.canonical_service",
        "istio.namespace", "http.request.method", "url.full", "http.request.body.size", "http.response.body.size",
        "sampling.rate", "peer.address", "user_agent.original", "upstream_cluster", "upstream_cluster.name",
        "upstream_address", "network.peer.address", "http.status_code", "http.response.status_code", "retry.count",
        "http.request.resend_count", "peer.service", "meshtrace.parent_inferred", "meshtrace.propagation.extracted",
        "meshtrace.propagation.injected", "meshtrace.sampling.upstream", "error", "http.path", "http.host",
        "http.route", "url.path", "url.scheme", "server.address", "server.port", "client.address",
        "network.protocol.version", "otel.status_code", "otel.status_description", "otel.library.name",
        "otel.scope.name", "otel.scope.version", "span.kind", "db.system", "db.statement", "rpc.system",
        "rpc.service", "rpc.method", "net.peer.name", "net.peer.port", "net.host.name", "thread.id", "thread.name",
    ]

    private struct Entry {
        var bytes: [UInt8]
        var string: String
    }

    private static let byLength: [[Entry]] = {
        var table = [[Entry]](repeating: [], count: 48)
        for name in tagNames where name.utf8.count < table.count {
            table[name.utf8.count].append(Entry(bytes: Array(name.utf8), string: name))
        }
        return table
    }()

    /// The shared string for these bytes when they spell a common tag name, else a new one.
    static func tagName(_ raw: ArraySlice<UInt8>) -> String {
        let n = raw.count
        if n > 0, n < byLength.count {
            let found: String? = raw.withUnsafeBufferPointer { r -> String? in
                for entry in byLength[n] {
                    let equal = entry.bytes.withUnsafeBufferPointer { e in
                        for i in 0..<n where e[i] != r[i] { return false }
                        return true
                    }
                    if equal { return entry.string }
                }
                return nil
            }
            if let found { return found }
        }
        return String(decoding: raw, as: UTF8.self)
    }
}
