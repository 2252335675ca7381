import NIOCore

/// What a captured connection carries, from its first bytes, as Envoy's `http_inspector`
/// listener filter decides: an HTTP/1.x request line, the HTTP/2 connection preface (h2c with
/// prior knowledge, as gRPC sends), or anything else (TLS, databases), relayed as plain TCP.
/// A pure state machine: bytes in, a verdict out; silence is the caller's timer.
struct ProtocolSniff {
    enum Verdict: Equatable {
        case undecided
        case http
        /// Not HTTP: relay the bytes as they are.
        case opaque
    }

    static let http2Preface = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)
    /// Request methods with their space. CONNECT is not among them: an app that speaks CONNECT
    /// through a captured connection talks to a proxy of its own, which gets its bytes unread.
    static let methods = ["GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "TRACE "].map { Array($0.utf8) }
    static let candidates = methods + [http2Preface]
    /// The longest candidate: no decision needs more bytes than this.
    static let enough = http2Preface.count

    private(set) var seen: [UInt8] = []
    private(set) var verdict = Verdict.undecided

    mutating func inspect(_ bytes: ByteBuffer) -> Verdict {
        guard verdict == .undecided else { return verdict }
        seen += bytes.readableBytesView.prefix(Self.enough - seen.count)
        verdict = Self.classify(seen)
        return verdict
    }

    /// The client said nothing in time: a server-first protocol, or one we cannot read.
    mutating func silence() -> Verdict {
        if verdict == .undecided { verdict = .opaque }
        return verdict
    }

    static func classify(_ seen: [UInt8]) -> Verdict {
        var possible = false
        for candidate in candidates {
            if seen.count >= candidate.count {
                if seen.starts(with: candidate) { return .http }
            } else if candidate.starts(with: seen) {
                possible = true
            }
        }
        return possible ? .undecided : .opaque
    }
}
