import Hummingbird

/// Typed access to query-string parameters. Every failure names the parameter and what it
/// expected, so a client sees `parameter 'limit' must be a positive integer, got "abc"`.
struct QueryParameters {
    private let pairs: [(name: String, value: String)]

    init(_ request: Request) { self.pairs = Self.parse(request.uri.query ?? "") }

    init(query: String) { self.pairs = Self.parse(query) }

    func string(_ name: String) -> String? {
        guard let value = pairs.first(where: { $0.name == name })?.value, !value.isEmpty else { return nil }
        return value
    }

    /// The value as sent, empty included: a parameter the spec marks required is present even
    /// when empty (`serviceName=` names the service "", which has no spans).
    func present(_ name: String) -> String? {
        pairs.first(where: { $0.name == name })?.value
    }

    func all(_ name: String) -> [String] {
        pairs.filter { $0.name == name && !$0.value.isEmpty }.map(\.value)
    }

    /// Form-style decoding: `+` is a space and `%XX` a byte, as Go's `url.ParseQuery` (Jaeger)
    /// and browsers' forms encode it. Invalid escapes are kept literally rather than failing.
    static func parse(_ query: String) -> [(name: String, value: String)] {
        query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (decode(parts[0]), parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    static func decode(_ text: Substring) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var utf8 = Array(text.utf8)[...]
        while let c = utf8.popFirst() {
            if c == UInt8(ascii: "+") {
                bytes.append(UInt8(ascii: " "))
            } else if c == UInt8(ascii: "%"), utf8.count >= 2,
                      let byte = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16) {
                bytes.append(byte)
                utf8 = utf8.dropFirst(2)
            } else {
                bytes.append(c)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Largest epoch-millisecond (resp. microsecond) value whose nanoseconds fit in 64 bits
    /// (the year 2262): larger times would overflow when converted, so they are refused.
    static let maxMillis: Int64 = Int64.max / 1_000_000
    static let maxMicros: Int64 = Int64.max / 1_000

    func int64(_ name: String, min: Int64 = 0, max: Int64 = Int64.max) throws(HTTPFailure) -> Int64? {
        guard let raw = string(name) else { return nil }
        guard let value = Int64(raw), value >= min, value <= max else {
            let range = min == Int64.min && max == Int64.max ? "" : max == Int64.max ? " >= \(min)" : " between \(min) and \(max)"
            throw .badRequest("parameter '\(name)' must be an integer\(range), got \"\(raw)\"")
        }
        return value
    }

    /// An `int64` query parameter as an OpenAPI spec types it: every occurrence must be an
    /// integer (an empty value is not), so `lookback=&lookback=abc` is refused rather than
    /// read as absent. Nil when the parameter is not sent at all.
    func specInt64(_ name: String) throws(HTTPFailure) -> Int64? {
        let values = pairs.filter { $0.name == name }.map(\.value)
        for raw in values where Int64(raw) == nil {
            throw .badRequest("parameter '\(name)' must be an integer, got \"\(raw)\"")
        }
        return values.first.flatMap { Int64($0) }
    }

    /// An `integer` query parameter with no format: any size, so one past the 64-bit range is
    /// clamped to it rather than refused (Zipkin's `limit`).
    func specInteger(_ name: String) throws(HTTPFailure) -> Int64? {
        let values = pairs.filter { $0.name == name }.map(\.value)
        var first: Int64?
        for raw in values {
            let digits = raw.first == "-" || raw.first == "+" ? raw.dropFirst() : Substring(raw)
            guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw .badRequest("parameter '\(name)' must be an integer, got \"\(raw)\"")
            }
            let value = Int64(raw) ?? (raw.first == "-" ? Int64.min : Int64.max)
            if first == nil { first = value }
        }
        return first
    }

    /// Zipkin's window as its spec types it: `endTs` and `lookback` are any int64 ms. An end
    /// before the epoch, or a lookback of zero or less, is a window that holds nothing (nil);
    /// Zipkin's server answers those with a 400 its spec does not list. Non-integers are 400.
    func zipkinWindow(requireEnd: Bool = false, defaultLookbackMs: Int64 = 86_400_000) throws(HTTPFailure) -> (start: UInt64, end: UInt64)? {
        let endTs: Int64
        if let given = try specInt64("endTs") {
            endTs = Swift.min(given, Self.maxMillis)
        } else if requireEnd {
            throw .badRequest("parameter 'endTs' is required: epoch milliseconds")
        } else {
            endTs = Int64(WallClock.nowNanos() / 1_000_000)
        }
        let lookback = try specInt64("lookback") ?? defaultLookbackMs
        guard endTs >= 0, lookback > 0 else { return nil }
        let end = UInt64(endTs) * 1_000_000 + 999_999
        let start = endTs > lookback ? UInt64(endTs - lookback) * 1_000_000 : 0
        return (start, end)
    }

    /// Go `time.ParseDuration` syntax ("1.5s", "250ms", "1h30m"), as Jaeger's API takes it.
    func goDurationNanos(_ name: String) throws(HTTPFailure) -> UInt64? {
        guard let raw = string(name) else { return nil }
        guard let nanos = GoDuration.parseNanos(raw) else {
            throw .badRequest("parameter '\(name)' must be a duration like 250ms, 1.5s or 1h30m, got \"\(raw)\"")
        }
        return nanos
    }
}

/// Go `time.ParseDuration` syntax, plus `d` for days (handy for `--retention 7d`).
public enum GoDuration {
    /// Parses a non-negative duration into nanoseconds. Nil on anything malformed.
    public static func parseNanos(_ text: String) -> UInt64? {
        var scalars = Array(text.unicodeScalars)
        if scalars == ["0"] { return 0 }
        if scalars.first == "+" { scalars.removeFirst() }
        guard !scalars.isEmpty else { return nil }
        var total: Double = 0
        var i = 0
        while i < scalars.count {
            var number = ""
            while i < scalars.count, ("0"..."9").contains(scalars[i]) || scalars[i] == "." {
                number.unicodeScalars.append(scalars[i])
                i += 1
            }
            var unit = ""
            while i < scalars.count, !(("0"..."9").contains(scalars[i]) || scalars[i] == ".") {
                unit.unicodeScalars.append(scalars[i])
                i += 1
            }
            guard let value = Double(number), value.isFinite else { return nil }
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "\u{00B5}s", "\u{03BC}s": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            case "d": scale = 86_400e9
            default: return nil
            }
            total += value * scale
        }
        guard total.isFinite, total >= 0, total < Double(UInt64.max / 2) else { return nil }
        return UInt64(total.rounded())
    }
}
