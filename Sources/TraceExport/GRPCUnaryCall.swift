import Foundation

/// A unary gRPC call's response, read frame by frame: a pure state machine (events in, the
/// outcome out), so the exporter's network code only feeds it.
///
/// The wire (grpc/grpc `doc/PROTOCOL-HTTP2.md`): `:status 200` headers, the length-prefixed
/// message, then trailers with `grpc-status`, `grpc-message` and optionally
/// `grpc-status-details-bin`. A failure may come as one HEADERS frame (Trailers-Only), and a
/// proxy or a non-gRPC server may answer with a plain HTTP status, which maps to a gRPC code as
/// the spec's table says.
struct GRPCUnaryCall {
    enum State: Equatable {
        case awaitingHeaders
        case awaitingTrailers
        case done(GRPCCallResult)
    }

    private(set) var state = State.awaitingHeaders

    /// Headers or trailers, as (name, value) pairs; `endStream` set when the frame closed the stream.
    mutating func receiveHeaders(_ headers: [(name: String, value: String)], endStream: Bool) {
        switch state {
        case .awaitingHeaders:
            let status = headers.first { $0.name == ":status" }.flatMap { Int($0.value) }
            if let status, status != 200 {
                state = .done(GRPCCallResult(code: Self.code(forHTTPStatus: status), message: "HTTP status \(status)", retryDelay: nil))
                return
            }
            if endStream || headers.contains(where: { $0.name == "grpc-status" }) {
                state = .done(Self.result(fromTrailers: headers))
            } else {
                state = .awaitingTrailers
            }
        case .awaitingTrailers:
            state = .done(Self.result(fromTrailers: headers))
        case .done:
            break
        }
    }

    /// The stream ended (or the connection went) without trailers.
    mutating func streamClosed() {
        if case .done = state { return }
        state = .done(GRPCCallResult(code: .unavailable, message: "stream closed before the call's status arrived", retryDelay: nil))
    }

    var result: GRPCCallResult? {
        if case .done(let result) = state { return result }
        return nil
    }

    static func result(fromTrailers headers: [(name: String, value: String)]) -> GRPCCallResult {
        guard let raw = headers.first(where: { $0.name == "grpc-status" })?.value, let value = Int(raw) else {
            return GRPCCallResult(code: .internal, message: "response has no grpc-status", retryDelay: nil)
        }
        let message = headers.first { $0.name == "grpc-message" }.map { percentDecoded($0.value) } ?? ""
        let details = headers.first { $0.name == "grpc-status-details-bin" }?.value
        return GRPCCallResult(
            code: GRPCStatusCode(rawValue: value) ?? .unknown, message: message,
            retryDelay: details.flatMap(GRPCStatusDetails.retryDelay(base64:)))
    }

    /// PROTOCOL-HTTP2.md, "HTTP to gRPC Status Code Mapping".
    static func code(forHTTPStatus status: Int) -> GRPCStatusCode {
        switch status {
        case 400: return .internal
        case 401: return .unauthenticated
        case 403: return .permissionDenied
        case 404: return .unimplemented
        case 429, 502, 503, 504: return .unavailable
        default: return .unknown
        }
    }

    /// grpc-message is percent-encoded UTF-8.
    static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(text.utf8)[...]
        while let c = utf8.popFirst() {
            if c == UInt8(ascii: "%"), utf8.count >= 2, let byte = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(byte)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// The status a call ended with.
struct GRPCCallResult: Equatable {
    var code: GRPCStatusCode
    var message: String
    /// From `google.rpc.RetryInfo` in the status details, when the server gave one.
    var retryDelay: Duration?

    /// OTLP's rules (opentelemetry-proto `docs/specification.md`, "OTLP/gRPC Throttling" and
    /// "Failures"): these codes are retried, RESOURCE_EXHAUSTED only when the server says when;
    /// everything else would fail the same way again.
    var outcome: ExportOutcome {
        let retryAfter = retryDelay.map { Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18 }
        let reason = "collector answered \(code)" + (message.isEmpty ? "" : ": \(message)")
        switch code {
        case .ok:
            return .exported
        case .cancelled, .deadlineExceeded, .aborted, .outOfRange, .unavailable, .dataLoss:
            return .retryable(reason: reason, retryAfter: retryAfter)
        case .resourceExhausted where retryDelay != nil:
            return .retryable(reason: reason, retryAfter: retryAfter)
        default:
            return .rejected(reason: reason)
        }
    }
}

/// google.rpc.Code.
enum GRPCStatusCode: Int, Equatable, CustomStringConvertible {
    case ok = 0, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists, permissionDenied,
        resourceExhausted, failedPrecondition, aborted, outOfRange, unimplemented, `internal`, unavailable, dataLoss,
        unauthenticated

    var description: String {
        switch self {
        case .ok: return "OK"
        case .cancelled: return "CANCELLED"
        case .unknown: return "UNKNOWN"
        case .invalidArgument: return "INVALID_ARGUMENT"
        case .deadlineExceeded: return "DEADLINE_EXCEEDED"
        case .notFound: return "NOT_FOUND"
        case .alreadyExists: return "ALREADY_EXISTS"
        case .permissionDenied: return "PERMISSION_DENIED"
        case .resourceExhausted: return "RESOURCE_EXHAUSTED"
        case .failedPrecondition: return "FAILED_PRECONDITION"
        case .aborted: return "ABORTED"
        case .outOfRange: return "OUT_OF_RANGE"
        case .unimplemented: return "UNIMPLEMENTED"
        case .internal: return "INTERNAL"
        case .unavailable: return "UNAVAILABLE"
        case .dataLoss: return "DATA_LOSS"
        case .unauthenticated: return "UNAUTHENTICATED"
        }
    }
}

/// Reads `RetryInfo.retry_delay` out of `grpc-status-details-bin` (base64 of a serialized
/// `google.rpc.Status{code=1; message=2; repeated Any details=3}`, `Any{type_url=1; value=2}`,
/// `RetryInfo{Duration retry_delay=1}`, `Duration{int64 seconds=1; int32 nanos=2}`). Four
/// small messages do not justify generated code in every sidecar.
enum GRPCStatusDetails {
    static func retryDelay(base64: String) -> Duration? {
        guard let bytes = decodeBase64(base64) else { return nil }
        for detail in fields(bytes[...], number: 3) {
            guard let typeURL = fields(detail, number: 1).first,
                  String(decoding: typeURL, as: UTF8.self).hasSuffix("google.rpc.RetryInfo"),
                  let info = fields(detail, number: 2).first
            else { continue }
            guard let duration = fields(info, number: 1).first else { return .zero }
            let seconds = varintField(duration, number: 1) ?? 0
            let nanos = varintField(duration, number: 2) ?? 0
            return .seconds(Int64(truncatingIfNeeded: seconds)) + .nanoseconds(Int64(truncatingIfNeeded: nanos))
        }
        return nil
    }

    /// The length-delimited fields numbered `number`; nil-safe on malformed input (stops).
    static func fields(_ message: ArraySlice<UInt8>, number: Int) -> [ArraySlice<UInt8>] {
        var out: [ArraySlice<UInt8>] = []
        var reader = message
        while let key = readVarint(&reader) {
            let field = Int(key >> 3)
            switch key & 7 {
            case 0: guard readVarint(&reader) != nil else { return out }
            case 1: guard reader.count >= 8 else { return out }; reader = reader.dropFirst(8)
            case 5: guard reader.count >= 4 else { return out }; reader = reader.dropFirst(4)
            case 2:
                guard let length = readVarint(&reader), length <= UInt64(reader.count) else { return out }
                let value = reader.prefix(Int(length))
                reader = reader.dropFirst(Int(length))
                if field == number { out.append(value) }
            default: return out
            }
        }
        return out
    }

    static func varintField(_ message: ArraySlice<UInt8>, number: Int) -> UInt64? {
        var reader = message
        while let key = readVarint(&reader) {
            guard key & 7 == 0, let value = readVarint(&reader) else { return nil }
            if Int(key >> 3) == number { return value }
        }
        return nil
    }

    static func readVarint(_ reader: inout ArraySlice<UInt8>) -> UInt64? {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = reader.popFirst() {
            guard shift < 64 else { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    /// Standard or unpadded base64 (gRPC servers send it unpadded).
    static func decodeBase64(_ text: String) -> [UInt8]? {
        var padded = text.trimmingCharacters(in: .whitespaces)
        while padded.count % 4 != 0 { padded += "=" }
        return Data(base64Encoded: padded).map(Array.init)
    }
}
