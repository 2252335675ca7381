import NIOCore

/// Tells an HTTP/2 prior-knowledge connection (gRPC over h2c) from HTTP/1 by its first bytes,
/// the connection preface of RFC 9113 §3.4. Nearly every HTTP/1 request differs at its first or
/// second byte, so the probe decides at once; only a true preface is held until all 24 bytes
/// have come.
struct HTTP2PrefaceProbe {
    enum Verdict {
        /// HTTP/1: these bytes (any held ones first) go to the HTTP/1 parser.
        case http1(ByteBuffer)
        /// The preface: these bytes, preface first, belong to an HTTP/2 connection.
        case http2(ByteBuffer)
        /// A prefix of the preface so far: held until more arrive.
        case undecided
    }

    static let preface: [UInt8] = Array("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".utf8)

    private var held: ByteBuffer?
    /// Once decided, the probe has nothing more to say about this connection.
    private(set) var decided = false

    /// Gives up waiting: the bytes held so far (a prefix of the preface), for whoever reads the
    /// connection instead.
    mutating func release() -> ByteBuffer? {
        decided = true
        defer { held = nil }
        return held
    }

    mutating func inspect(_ input: ByteBuffer) -> Verdict {
        var bytes = input
        if var earlier = held {
            earlier.writeBuffer(&bytes)
            bytes = earlier
            held = nil
        }
        let count = min(bytes.readableBytes, Self.preface.count)
        let matches = bytes.withUnsafeReadableBytes { raw in
            (0..<count).allSatisfy { raw[$0] == Self.preface[$0] }
        }
        if !matches {
            decided = true
            return .http1(bytes)
        }
        if count == Self.preface.count {
            decided = true
            return .http2(bytes)
        }
        held = bytes
        return .undecided
    }
}
