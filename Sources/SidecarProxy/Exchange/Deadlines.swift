import NIOCore

/// A request's deadlines, from the configuration in force when it started and the caller's
/// own `grpc-timeout`:
/// - the request timeout (Envoy's route timeout). HTTP/1 runs it from when the request is sent
///   (or waits for a connection) until the response is complete. An HTTP/2 call has it only
///   until its response headers arrive: a gRPC stream that has answered may run for an hour,
///   where a whole-call limit would cut every long stream at 15 s unless turned off;
/// - the per-try timeout (`per_try_timeout`): how long each attempt may wait for its response
///   head once the request is sent;
/// - the caller's `grpc-timeout`, which bounds the whole call, as gRPC means it.
struct Deadlines: Sendable, Equatable {
    enum Kind: Sendable, Equatable {
        case request, perTry, grpc
    }

    /// 0: none.
    var requestMillis: Int64
    /// 0: none.
    var perTryMillis: Int64
    var grpcMillis: Int64?

    init(requestMillis: Int64, perTryMillis: Int64, grpcMillis: Int64? = nil) {
        self.requestMillis = requestMillis
        self.perTryMillis = perTryMillis
        self.grpcMillis = grpcMillis
    }

    init(_ config: SidecarConfiguration, grpcTimeout: String? = nil) {
        self.init(
            requestMillis: config.requestTimeoutMillis, perTryMillis: config.perTryTimeoutMillis,
            grpcMillis: grpcTimeout.flatMap(Self.grpcTimeoutMillis))
    }

    /// How long this kind runs, if it is set.
    func millis(_ kind: Kind) -> Int64? {
        switch kind {
        case .request: return requestMillis > 0 ? requestMillis : nil
        case .perTry: return perTryMillis > 0 ? perTryMillis : nil
        case .grpc: return grpcMillis
        }
    }

    /// The reason a local reply (or the span) gives for this deadline passing.
    func reason(_ kind: Kind) -> String {
        switch kind {
        case .request: return "upstream request timeout after \(requestMillis) ms"
        case .perTry: return "upstream per-try timeout after \(perTryMillis) ms"
        case .grpc: return "grpc-timeout of \(grpcMillis ?? 0) ms reached"
        }
    }

    /// gRPC's `grpc-timeout`: at most 8 digits and a unit (H, M, S, m, u, n), in whole
    /// milliseconds rounded up (a 1 ns deadline is still a deadline). Nil when malformed.
    static func grpcTimeoutMillis(_ value: String) -> Int64? {
        let utf8 = Array(value.utf8)
        guard (2...9).contains(utf8.count), let unit = utf8.last else { return nil }
        var amount: Int64 = 0
        for byte in utf8.dropLast() {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            amount = amount * 10 + Int64(byte - UInt8(ascii: "0"))
        }
        // In milliseconds from the start: eight digits of hours still fit in 64 bits.
        switch unit {
        case UInt8(ascii: "H"): return amount * 3_600_000
        case UInt8(ascii: "M"): return amount * 60_000
        case UInt8(ascii: "S"): return amount * 1_000
        case UInt8(ascii: "m"): return amount
        case UInt8(ascii: "u"): return (amount + 999) / 1_000
        case UInt8(ascii: "n"): return (amount + 999_999) / 1_000_000
        default: return nil
        }
    }
}
