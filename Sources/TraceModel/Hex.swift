/// Lower-case hex helpers shared by ids and headers. Kept allocation-light because
/// every span on the ingest path goes through them.
public enum Hex {
    @inlinable
    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c &- UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c &- UInt8(ascii: "a") &+ 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c &- UInt8(ascii: "A") &+ 10
        default: return nil
        }
    }

    /// Parses up to 16 hex digits into a UInt64. Returns nil on any non-hex byte or bad length.
    /// Inlinable so that callers in other modules get it specialized for their collection: the
    /// generic version walked the bytes through witness tables, some 10k instructions per span
    /// id on the collector's ingest path.
    @inlinable
    public static func parseUInt64<S: Collection>(_ utf8: S) -> UInt64? where S.Element == UInt8 {
        guard !utf8.isEmpty, utf8.count <= 16 else { return nil }
        var value: UInt64 = 0
        for c in utf8 {
            guard let n = nibble(c) else { return nil }
            value = (value << 4) | UInt64(n)
        }
        return value
    }

    /// The lower-hex digit for a nibble, by arithmetic (no table lookup, no bounds check).
    @inlinable @inline(__always)
    public static func digit(_ nibble: UInt64) -> UInt8 {
        let n = UInt8(truncatingIfNeeded: nibble & 0xF)
        return n < 10 ? n &+ 48 : n &+ 87
    }

    /// Writes `value` as 16 lower-hex digits at `buffer[offset..<offset + 16]`.
    @inlinable
    public static func write(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at offset: Int) {
        var v = value
        var i = offset + 15
        while i >= offset {
            buffer[i] = digit(v)
            v >>= 4
            i -= 1
        }
    }

    /// Fixed-width (16 digit) lower-hex rendering.
    public static func format(_ value: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { buffer in
            write(value, into: buffer, at: 0)
            return 16
        }
    }

    /// 32 lower-hex digits: `high` then `low`, in one string (no concatenation).
    public static func format(_ high: UInt64, _ low: UInt64) -> String {
        String(unsafeUninitializedCapacity: 32) { buffer in
            write(high, into: buffer, at: 0)
            write(low, into: buffer, at: 16)
            return 32
        }
    }

    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = [UInt8]()
        for b in bytes {
            out.append(digit(UInt64(b >> 4)))
            out.append(digit(UInt64(b)))
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ string: String) -> [UInt8]? {
        let utf8 = Array(string.utf8)
        guard utf8.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
