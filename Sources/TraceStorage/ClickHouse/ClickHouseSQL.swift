/// Builds SQL text for ClickHouse 18.16, which has no query parameters (`{name:Type}` came in
/// 19.x): every user value goes through `literal`, which escapes each byte that could end or
/// change the literal, so no value can change a query's meaning.
enum ClickHouseSQL {
    /// `'...'` with `\\`, `\'` and every control byte as `\xHH`. Bytes ≥ 0x80 pass through, so
    /// UTF-8 stays readable in logs and `system.query_log`.
    static func literal(_ value: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(value.utf8.count + 2)
        out.append(UInt8(ascii: "'"))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"), UInt8(ascii: "'"):
                out.append(UInt8(ascii: "\\"))
                out.append(byte)
            case 0..<0x20, 0x7f:
                out.append(contentsOf: Array("\\x".utf8))
                out.append(hexDigit(byte >> 4))
                out.append(hexDigit(byte & 0xf))
            default:
                out.append(byte)
            }
        }
        out.append(UInt8(ascii: "'"))
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? UInt8(ascii: "0") + v : UInt8(ascii: "a") + v - 10 }

    /// Database and cluster names come from flags; they are used as identifiers, so only a safe
    /// alphabet is accepted (checked at start-up, with a message naming the flag).
    static func isIdentifier(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.count <= 64 && name.utf8.allSatisfy { b in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b) || b == UInt8(ascii: "_")
        }
    }

    /// Nanoseconds since the epoch to a `Date` column's day number, clamped to the range
    /// `DateTime` can also hold (UInt32 seconds, up to 2106-02-07).
    static func day(ofNanos nanos: UInt64) -> UInt16 { UInt16(min(nanos / 86_400_000_000_000, 49_709)) }

    /// A day number as a `'YYYY-MM-DD'` literal, which every version compares with a `Date`
    /// (a bare number is read as a day on some versions and as a unix time on others).
    static func dateLiteral(_ day: UInt16) -> String {
        // Howard Hinnant's civil_from_days.
        let z = Int(day) + 719_468
        let era = z / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "'\(y)-\(two(m))-\(two(d))'"
    }

    static func date(ofNanos nanos: UInt64) -> String { dateLiteral(day(ofNanos: nanos)) }

    /// 2100-01-01. Upper bounds past it (a query's "no end", `UInt64.max`) are left off the
    /// `Date`/`DateTime` key columns: 18.16 reads a date near the type's end as a wrong value.
    static let keyBoundLimitNanos: UInt64 = 4_102_444_800_000_000_000

    /// `date`/`ts` range conditions for spans starting in `[start, end]` (partition and key pruning).
    static func keyRange(_ start: UInt64, _ end: UInt64, ts: Bool) -> [String] {
        var c = ["date >= \(date(ofNanos: start))"]
        if ts { c.append("ts >= toDateTime(\(seconds(ofNanos: start)))") }
        if end < keyBoundLimitNanos {
            c.append("date <= \(date(ofNanos: end))")
            if ts { c.append("ts <= toDateTime(\(seconds(ofNanos: end)))") }
        }
        return c
    }

    static func seconds(ofNanos nanos: UInt64) -> UInt32 { UInt32(min(nanos / 1_000_000_000, UInt64(UInt32.max))) }
}
