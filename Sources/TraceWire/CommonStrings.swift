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

    private static let table = ByteKeyTable(tagNames.map { ($0, $0) })

    /// The shared string for these bytes when they spell a common tag name, else a new one.
    static func tagName(_ raw: ArraySlice<UInt8>) -> String {
        table.lookup(raw) ?? String(decoding: raw, as: UTF8.self)
    }
}

/// A fixed set of names looked up by their UTF-8 bytes: bucketed by length, then compared byte
/// by byte. For hot decoding paths that would otherwise build a String per key just to compare it.
struct ByteKeyTable<Value>: Sendable where Value: Sendable {
    private struct Entry: Sendable {
        var bytes: [UInt8]
        var value: Value
    }

    private let byLength: [[Entry]]

    init(_ entries: [(String, Value)]) {
        var table = [[Entry]](repeating: [], count: (entries.map { $0.0.utf8.count }.max() ?? 0) + 1)
        for (name, value) in entries { table[name.utf8.count].append(Entry(bytes: Array(name.utf8), value: value)) }
        byLength = table
    }

    func lookup(_ raw: ArraySlice<UInt8>) -> Value? {
        let n = raw.count
        guard n > 0, n < byLength.count else { return nil }
        return raw.withUnsafeBufferPointer { r -> Value? in
            for entry in byLength[n] {
                let equal = entry.bytes.withUnsafeBufferPointer { e in
                    for i in 0..<n where e[i] != r[i] { return false }
                    return true
                }
                if equal { return entry.value }
            }
            return nil
        }
    }
}
