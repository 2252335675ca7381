/// Finds the next byte of a JSON string that is not plain text (a quote, a backslash or a control
/// character), eight bytes at a time. String contents are most of a span's bytes and almost never
/// hold one of those, so both the reader and the writer skip them a word at a time.
enum JSONPlainBytes {
    /// The offset of the first quote, backslash or byte below 0x20 at or after `from`, or
    /// `raw.count` when there is none.
    @inline(__always)
    static func firstSpecial(_ raw: UnsafeRawBufferPointer, from: Int = 0) -> Int {
        var i = from
        let n = raw.count
        while i + 8 <= n {
            let mask = specialMask(UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
            if mask != 0 { return i + mask.trailingZeroBitCount >> 3 }
            i += 8
        }
        while i < n {
            let c = raw[i]
            if c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { return i }
            i += 1
        }
        return n
    }

    /// The high bit of each byte of `word` (byte 0 lowest) that is a quote, a backslash or below
    /// 0x20. `(x - 0x01…) & ~x & 0x80…` flags the bytes of x that are 0; a flagged byte's borrow
    /// can flag a byte above it falsely, but never one below, so the lowest flag is exact, and
    /// that is the only one read.
    @inline(__always)
    static func specialMask(_ word: UInt64) -> UInt64 {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quote = word ^ (ones &* 0x22)
        let backslash = word ^ (ones &* 0x5C)
        let special = ((quote &- ones) & ~quote) | ((backslash &- ones) & ~backslash) | ((word &- ones &* 0x20) & ~word)
        return special & (ones &* 0x80)
    }
}
