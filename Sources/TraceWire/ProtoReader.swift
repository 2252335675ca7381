/// Protocol-buffers wire format read by hand over raw bytes: fields in order, each a key
/// (number and wire type) and a value, with every length checked against the bytes left. The
/// collector decodes Zipkin proto3 with it; generated code built a message object, a tag
/// dictionary and a sorted copy per span, five times the instructions of the JSON path.
struct ProtoReader {
    /// The whole message; callers keep its memory alive (decode runs inside `withUnsafeBytes`).
    let buffer: UnsafeRawBufferPointer
    private(set) var position: Int
    let end: Int

    init(_ buffer: UnsafeRawBufferPointer) {
        self.buffer = buffer
        position = 0
        end = buffer.count
    }

    /// A reader over a length-delimited field's content.
    init(_ buffer: UnsafeRawBufferPointer, _ range: Range<Int>) {
        self.buffer = buffer
        position = range.lowerBound
        end = range.upperBound
    }

    /// The bytes of a range returned by `lengthDelimited`.
    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: buffer[range])
    }

    enum WireType: UInt64 {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
        case startGroup = 3
        case endGroup = 4
        case fixed32 = 5
    }

    /// The next field's number and wire type, or nil at the end.
    mutating func nextField() throws(WireError) -> (number: Int, type: WireType)? {
        guard position < end else { return nil }
        let key = try varint()
        guard let type = WireType(rawValue: key & 7) else { throw WireError("malformed protobuf: wire type \(key & 7)") }
        let number = key >> 3
        guard number > 0, number <= 536_870_911 else { throw WireError("malformed protobuf: field number \(number)") }
        return (Int(number), type)
    }

    mutating func varint() throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while position < end {
            let byte = buffer[position]
            position += 1
            // The tenth byte holds bit 63; what else it holds is dropped, as Google's parsers
            // (C++ and upb) and SwiftProtobuf drop it. Only an eleventh byte is malformed.
            result |= UInt64(byte & 0x7F) << shift
            if byte < 0x80 { return result }
            if shift == 63 { throw WireError("malformed protobuf: varint longer than 10 bytes") }
            shift += 7
        }
        throw WireError("malformed protobuf: truncated")
    }

    mutating func fixed64() throws(WireError) -> UInt64 {
        guard end - position >= 8 else { throw WireError("malformed protobuf: truncated") }
        var v: UInt64 = 0
        v = buffer.loadUnaligned(fromByteOffset: position, as: UInt64.self).littleEndian
        position += 8
        return v
    }

    /// A length-delimited field's content, as a range of `bytes`.
    mutating func lengthDelimited() throws(WireError) -> Range<Int> {
        let length = try varint()
        guard length <= UInt64(end - position) else { throw WireError("malformed protobuf: truncated") }
        let range = position..<(position + Int(length))
        position = range.upperBound
        return range
    }

    mutating func string() throws(WireError) -> String {
        String(decoding: bytes(try lengthDelimited()), as: UTF8.self)
    }

    /// Passes over a field this reader does not use (unknown fields are allowed, as protobuf
    /// allows them), groups included: a proto2-era group is skipped to its matching end, as
    /// the generated parsers skip it.
    mutating func skip(_ type: WireType, number: Int, depth: Int = 0) throws(WireError) {
        switch type {
        case .varint: _ = try varint()
        case .fixed64: _ = try fixed64()
        case .lengthDelimited: _ = try lengthDelimited()
        case .fixed32:
            guard end - position >= 4 else { throw WireError("malformed protobuf: truncated") }
            position += 4
        case .startGroup:
            guard depth < 64 else { throw WireError("malformed protobuf: groups nested too deep") }
            while true {
                guard let (inner, innerType) = try nextField() else { throw WireError("malformed protobuf: truncated") }
                if innerType == .endGroup {
                    guard inner == number else { throw WireError("malformed protobuf: group \(number) ended as \(inner)") }
                    return
                }
                try skip(innerType, number: inner, depth: depth + 1)
            }
        case .endGroup:
            throw WireError("malformed protobuf: end of group \(number) that was not started")
        }
    }
}
