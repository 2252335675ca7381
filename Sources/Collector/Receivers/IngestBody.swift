import HTTPTypes
import Hummingbird
import NIOCore
import TraceWire

/// Reads an ingest request body under the configured limits and undoes gzip.
/// Limits apply twice: to the bytes on the wire and to the bytes after decompression,
/// so a small gzip bomb cannot expand into unbounded memory.
struct IngestBody {
    var maxWireBytes: Int
    var maxDecodedBytes: Int

    func read(_ request: Request) async throws(HTTPFailure) -> [UInt8] {
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > maxWireBytes {
            throw tooLarge(declared, limit: maxWireBytes, what: "request body")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: maxWireBytes)
        } catch is NIOTooManyBytesError {
            throw tooLarge(nil, limit: maxWireBytes, what: "request body")
        } catch {
            throw HTTPFailure.badRequest("could not read request body: \(error)")
        }
        let raw = Array(buffer.readableBytesView)
        let encoding = (request.headers[.contentEncoding] ?? "identity").trimmingSpaces().lowercased()
        switch encoding {
        case "", "identity":
            return raw
        case "gzip", "x-gzip", "deflate":
            do {
                return try Gzip.decompress(raw, limit: maxDecodedBytes)
            } catch {
                if error.kind == .tooLarge { throw tooLarge(nil, limit: maxDecodedBytes, what: "decompressed body") }
                throw HTTPFailure.badRequest("Cannot gunzip spans: \(error.message)")
            }
        default:
            throw HTTPFailure(status: .unsupportedMediaType, message: "unsupported Content-Encoding '\(encoding)': send gzip or no encoding")
        }
    }

    private func tooLarge(_ size: Int?, limit: Int, what: String) -> HTTPFailure {
        let got = size.map { " (\($0) bytes)" } ?? ""
        return HTTPFailure(status: .contentTooLarge, message: "\(what) exceeds the limit of \(limit) bytes\(got); send smaller batches")
    }
}

/// The media type without parameters, lower-cased: "application/json; charset=utf-8" -> "application/json".
func mediaType(of request: Request) -> String? {
    guard let value = request.headers[.contentType] else { return nil }
    let base = value.split(separator: ";", maxSplits: 1).first.map(String.init) ?? value
    return base.trimmingSpaces().lowercased()
}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}
