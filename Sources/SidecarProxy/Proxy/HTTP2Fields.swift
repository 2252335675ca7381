import NIOHPACK
import NIOHTTP1

/// HTTP/2 field lists for the relay.
enum HTTP2Fields {
    /// The regular (non-pseudo) fields, for the same scan an HTTP/1 head gets.
    static func plain(_ headers: HPACKHeaders) -> HTTPHeaders {
        var plain = HTTPHeaders()
        for (name, value, _) in headers where !name.hasPrefix(":") {
            plain.add(name: name, value: value)
        }
        return plain
    }

    /// What goes upstream: the pseudo-fields, the fields an HTTP/1 hop would forward (trace
    /// context, the request id and meshtrace's markers are this hop's own, in `added`), and
    /// `te: trailers`, which HTTP/2 allows and gRPC servers require.
    static func upstream(_ headers: HPACKHeaders, added: [(String, String)]) -> HPACKHeaders {
        var out = HPACKHeaders()
        for (name, value, indexing) in headers where name.hasPrefix(":") {
            out.add(name: name, value: value, indexing: indexing)
        }
        for (name, value, indexing) in headers where !name.hasPrefix(":") {
            switch RequestHeadScan.classify(name) {
            case .forward, .userAgent, .clientTraceID, .forceTrace, .contentLength:
                out.add(name: name, value: value, indexing: indexing)
            case .hopByHop where name == "te" && value == "trailers":
                out.add(name: name, value: value, indexing: indexing)
            case .hopByHop, .upgrade, .host, .requestID, .downstreamCluster, .trace, .connection, .transferEncoding, .loopMarker, .expect:
                break
            }
        }
        for (name, value) in added { out.add(name: name.lowercased(), value: value) }
        return out
    }

    /// gRPC's `grpc-message`: percent-encoded outside printable ASCII (and `%` itself).
    static func grpcMessage(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            if byte >= 0x20, byte <= 0x7E, byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
