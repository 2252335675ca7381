#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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

    private static let table = ByteKeyTable(tagNames.enumerated().map { ($1, $0) })

    /// The tag name these bytes spell: the shared string and its position in `tagNames` when
    /// it is a common one, else a new string and nil.
    static func tagName(_ raw: ArraySlice<UInt8>) -> (name: String, common: Int?) {
        guard let index = table.lookup(raw) else { return (String(decoding: raw, as: UTF8.self), nil) }
        return (tagNames[index], index)
    }

    static func tagName(_ raw: UnsafeRawBufferPointer) -> (name: String, common: Int?) {
        guard let index = table.lookup(raw) else { return (String(decoding: raw, as: UTF8.self), nil) }
        return (tagNames[index], index)
    }
}

/// The last value decoded for each common tag name, handed out again when the next span's value
/// has the same bytes. Most of a span's tag values repeat in every span of a batch (node, method,
/// protocol, service, user agent, status), so this turns a String built, validated and later
/// freed per tag into one byte compare, and spans stored in memory share the text.
struct RepeatedTagValues {
    private var last = [String?](repeating: nil, count: CommonStrings.tagNames.count)

    /// The stored string equal to `raw`, or nil.
    func value(forTag index: Int, _ raw: UnsafeRawBufferPointer) -> String? {
        guard var s = last[index], s.utf8.count == raw.count else { return nil }
        let equal = s.withUTF8 { a in
            guard let pa = a.baseAddress, let pb = raw.baseAddress else { return a.count == raw.count }
            return memcmp(pa, pb, a.count) == 0
        }
        return equal ? s : nil
    }

    func value(forTag index: Int, _ raw: ArraySlice<UInt8>) -> String? {
        guard var s = last[index], s.utf8.count == raw.count else { return nil }
        let equal = s.withUTF8 { a in
            raw.withUnsafeBufferPointer { b in
                guard let pa = a.baseAddress, let pb = b.baseAddress else { return a.count == b.count }
                return memcmp(pa, pb, a.count) == 0
            }
        }
        return equal ? s : nil
    }

    mutating func remember(_ value: String, forTag index: Int) {
        last[index] = value
    }
}

/// A fixed set of names looked up by their UTF-8 bytes: bucketed by length, then matched by their
/// first and last eight bytes (all of a name up to 16 bytes) before a full compare. For hot
/// decoding paths that would otherwise build a String per key just to compare it.
struct ByteKeyTable<Value>: Sendable where Value: Sendable {
    private struct Entry: Sendable {
        var head: UInt64
        var tail: UInt64
        var bytes: [UInt8]
        var value: Value
    }

    private let byLength: [[Entry]]

    init(_ entries: [(String, Value)]) {
        var table = [[Entry]](repeating: [], count: (entries.map { $0.0.utf8.count }.max() ?? 0) + 1)
        for (name, value) in entries {
            let bytes = Array(name.utf8)
            let (head, tail) = bytes.withUnsafeBytes { Self.words($0) }
            table[bytes.count].append(Entry(head: head, tail: tail, bytes: bytes, value: value))
        }
        byLength = table
    }

    /// The first and the last up-to-eight bytes as integers (zero-padded when shorter).
    @inline(__always)
    private static func words(_ raw: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        let n = raw.count
        if n >= 8 {
            return (raw.loadUnaligned(as: UInt64.self), raw.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self))
        }
        var w: UInt64 = 0
        for i in 0..<n { w |= UInt64(raw[i]) << (8 * UInt64(i)) }
        return (w, w)
    }

    func lookup(_ raw: ArraySlice<UInt8>) -> Value? {
        raw.withUnsafeBytes { lookup($0) }
    }

    func lookup(_ r: UnsafeRawBufferPointer) -> Value? {
        let n = r.count
        guard n > 0, n < byLength.count else { return nil }
        let (head, tail) = Self.words(r)
        for entry in byLength[n] where entry.head == head && entry.tail == tail {
            if n <= 16 { return entry.value }
            let equal = entry.bytes.withUnsafeBytes { e in
                guard let pe = e.baseAddress, let pr = r.baseAddress else { return false }
                return memcmp(pe, pr, n) == 0
            }
            if equal { return entry.value }
        }
        return nil
    }
}
