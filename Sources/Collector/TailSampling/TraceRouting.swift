import Foundation
import TailSampling
import TraceModel
import Yams

/// Several collectors deciding together: every trace id has one owner among `peers`, chosen
/// by rendezvous hashing (each peer scores `FNV-1a(peer URL + trace id)`, the highest wins), so
/// every collector with the same peer list picks the same owner without talking, and adding or
/// removing a peer moves only the traces that peer wins or held (about 1/N of them), the
/// property OpenTelemetry's `loadbalancingexporter` gets from its hash ring.
///
/// A collector that receives spans of a trace it does not own forwards them to the owner
/// (OTLP/HTTP, marked so the owner does not forward again), and answers its client once the
/// owner has. README "Several collectors" says why the collectors route, not the sidecars.
public struct TraceRouting: Sendable, Equatable {
    /// Every collector's OTLP/HTTP base URL (`http://host:4318`), this one included.
    public var peers: [String]
    /// This collector's entry in `peers`.
    public var selfURL: String

    public init(peers: [String], selfURL: String) {
        self.peers = peers
        self.selfURL = selfURL
    }

    public func owner(of traceID: TraceID) -> String {
        var best = selfURL
        var bestScore: UInt64 = 0
        for peer in peers {
            let score = Self.score(peer: peer, traceID: traceID)
            if score > bestScore || (score == bestScore && peer < best) {
                best = peer
                bestScore = score
            }
        }
        return best
    }

    /// FNV-1a 64 over the peer's URL and the 16 id bytes (the `probabilistic` policy's hash,
    /// with the peer as the salt), finished with a SplitMix64 mix so ids that differ in few bits
    /// still spread.
    static func score(peer: String, traceID: TraceID) -> UInt64 {
        SplitMix64.mix(ProbabilisticThreshold.hash(salt: peer, traceID: traceID))
    }

    /// Canonical form: scheme, host and port, no trailing slash.
    static func normalize(_ url: String) -> String? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), scheme == "http",
              let host = components.host, !host.isEmpty, components.query == nil,
              components.percentEncodedPath.isEmpty || components.percentEncodedPath == "/"
        else { return nil }
        return "http://\(host.lowercased()):\(components.port ?? 4318)"
    }

    static func parse(_ node: Node, reader: PolicyYAMLReader) throws(PolicyFileError) -> TraceRouting {
        var peers: [String] = []
        var selfURL: String?
        var peersNode: Node?
        var selfNode: Node?
        for (k, _, v) in try reader.mapping(node, "routing", allowed: ["self", "peers"]) {
            if k == "self" {
                selfURL = try reader.string(v, "routing.self")
                selfNode = v
            } else {
                peers = try reader.strings(v, "routing.peers")
                peersNode = v
            }
        }
        let hint = "write each collector's OTLP/HTTP address, http://HOST:PORT (4318 by default)"
        var normalized: [String] = []
        for (i, peer) in peers.enumerated() {
            guard let url = normalize(peer) else {
                throw reader.fail(peersNode?.sequence?[i] ?? node, "routing.peers[\(i)]", "'\(peer)' is not an http://HOST:PORT address", hint: hint)
            }
            guard !normalized.contains(url) else { throw reader.fail(peersNode?.sequence?[i] ?? node, "routing.peers[\(i)]", "'\(peer)' is listed twice") }
            normalized.append(url)
        }
        guard normalized.count >= 1 else { throw reader.fail(node, "routing.peers", "list every collector, this one included", hint: hint) }
        guard let selfURL else { throw reader.fail(node, "routing.self", "missing: which of the peers is this collector", hint: hint) }
        guard let me = normalize(selfURL), normalized.contains(me) else {
            throw reader.fail(selfNode ?? node, "routing.self", "'\(selfURL)' is not one of routing.peers", hint: "every collector gets the same peers list and its own self")
        }
        return TraceRouting(peers: normalized, selfURL: me)
    }
}
