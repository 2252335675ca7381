/// ClickHouse's `RowBinary` format (documented before 18.16): little-endian fixed-width integers,
/// `Date` as UInt16 days, `DateTime` as UInt32 seconds, `String` as a LEB128 length and raw bytes
/// (so payloads and invalid UTF-8 need no escaping), `Array` as a LEB128 count and elements.
struct RowBinaryWriter {
    var bytes: [UInt8] = []

    init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    mutating func uint8(_ v: UInt8) { bytes.append(v) }
    mutating func uint16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func uint32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func uint64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }

    mutating func varint(_ value: Int) {
        var v = UInt64(value)
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func string(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            varint(utf8.count)
            bytes.append(contentsOf: utf8)
        }
    }

    mutating func blob(_ b: [UInt8]) {
        varint(b.count)
        bytes.append(contentsOf: b)
    }

    mutating func strings(_ list: [String]) {
        varint(list.count)
        for s in list { string(s) }
    }
}

/// Reads `RowBinary` query results; every read is bounds-checked.
struct RowBinaryReader {
    struct Truncated: Error, CustomStringConvertible {
        var offset: Int
        var description: String { "ClickHouse RowBinary result ended early at byte \(offset)" }
    }

    let bytes: [UInt8]
    private(set) var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { offset >= bytes.count }

    mutating func uint8() throws(Truncated) -> UInt8 {
        guard offset < bytes.count else { throw Truncated(offset: offset) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func uint16() throws(Truncated) -> UInt16 { UInt16(truncatingIfNeeded: try fixed(2)) }
    mutating func uint64() throws(Truncated) -> UInt64 { try fixed(8) }

    private mutating func fixed(_ width: Int) throws(Truncated) -> UInt64 {
        guard bytes.count - offset >= width else { throw Truncated(offset: offset) }
        var v: UInt64 = 0
        for i in 0..<width { v |= UInt64(bytes[offset + i]) << (8 * UInt64(i)) }
        offset += width
        return v
    }

    mutating func varint() throws(Truncated) -> Int {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try uint8()
            result |= UInt64(b & 0x7f) << shift
            if b & 0x80 == 0 { break }
            shift += 7
            guard shift < 63 else { throw Truncated(offset: offset) }
        }
        guard result <= UInt64(Int.max) else { throw Truncated(offset: offset) }
        return Int(result)
    }

    /// A `String` column's bytes, as a slice of the result (no copy).
    mutating func blob() throws(Truncated) -> ArraySlice<UInt8> {
        let count = try varint()
        guard bytes.count - offset >= count else { throw Truncated(offset: offset) }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    mutating func string() throws(Truncated) -> String { String(decoding: try blob(), as: UTF8.self) }
}
