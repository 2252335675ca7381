import HTTPTypes
import Hummingbird
import NIOCore

/// A request that cannot be served, with the status and a message that says what to fix.
/// Each API renders it in its own error shape (plain text for Zipkin, `google.rpc.Status` for
/// OTLP, the `errors` envelope for Jaeger).
struct HTTPFailure: Error, Sendable {
    var status: HTTPResponse.Status
    var message: String
    /// Seconds, for 429/503 answers.
    var retryAfter: Int?

    static func badRequest(_ message: String) -> HTTPFailure { HTTPFailure(status: .badRequest, message: message) }
    static func notFound(_ message: String) -> HTTPFailure { HTTPFailure(status: .notFound, message: message) }
}

extension Response {
    static func bytes(_ bytes: [UInt8], status: HTTPResponse.Status = .ok, contentType: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        bytes(Array(text.utf8), status: status, contentType: "application/json")
    }

    static func text(_ text: String, status: HTTPResponse.Status) -> Response {
        bytes(Array(text.utf8), status: status, contentType: "text/plain; charset=utf-8")
    }

    mutating func applyRetryAfter(_ failure: HTTPFailure) {
        if let seconds = failure.retryAfter { headers[.retryAfter] = String(seconds) }
    }
}
