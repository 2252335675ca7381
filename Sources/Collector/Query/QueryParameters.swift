import Hummingbird

/// Typed access to query-string parameters. Every failure names the parameter and what it
/// expected, so a client sees `parameter 'limit' must be a positive integer, got "abc"`.
struct QueryParameters {
    private let request: Request

    init(_ request: Request) { self.request = request }

    func string(_ name: String) -> String? {
        guard let value = request.uri.queryParameters.get(name), !value.isEmpty else { return nil }
        return value
    }

    func all(_ name: String) -> [String] {
        request.uri.queryParameters.getAll(name).map { String($0) }.filter { !$0.isEmpty }
    }

    func int64(_ name: String, min: Int64 = 0) throws(HTTPFailure) -> Int64? {
        guard let raw = string(name) else { return nil }
        guard let value = Int64(raw), value >= min else {
            throw .badRequest("parameter '\(name)' must be an integer >= \(min), got \"\(raw)\"")
        }
        return value
    }

    func positiveInt(_ name: String, max: Int = 100_000) throws(HTTPFailure) -> Int? {
        guard let raw = string(name) else { return nil }
        guard let value = Int(raw), value > 0 else {
            throw .badRequest("parameter '\(name)' must be a positive integer, got \"\(raw)\"")
        }
        return Swift.min(value, max)
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
