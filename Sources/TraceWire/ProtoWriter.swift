/// Protocol-buffers wire format written by hand, for the paths where building generated
/// messages (one class per message, a dictionary per map) costs more than the bytes: the
/// sidecar writes each span straight from its hop record.
///
/// Nested messages need their length before their content. `beginMessage` leaves one byte for
/// it and `endMessage` fills it in, moving the content up when the length needs more bytes, so
/// callers never compute sizes.
///
/// A class, not a value: writers are made once and reused for every span, and a reference
/// needs no copy-on-write check before each of a span's ~150 writes. Share one and you share
/// its bytes.
///
///     let w = ProtoWriter()
///     let e = w.beginMessage(field: 8)   // Endpoint
///     w.string(field: 1, "frontend")
///     w.endMessage(e)
public final class ProtoWriter {
    private var pointer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var written = 0

    public init(capacity: Int = 256) {
        self.capacity = max(capacity, 16)
        pointer = .allocate(capacity: self.capacity)
    }

    deinit { pointer.deallocate() }

    public var count: Int { written }

    /// What was written, as an array (a copy).
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: pointer, count: written)) }

    /// What was written, lent without a copy.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: pointer, count: written))
    }

    /// Forgets what was written but keeps the allocation.
    public func removeAll() { written = 0 }

    public enum WireType: UInt8, Sendable {
        case varint = 0
        case fixed64 = 1
        case lengthDelimited = 2
    }

    // MARK: Fields

    @inline(__always) public func key(_ field: Int, _ type: WireType) {
        if field < 16 {
            appendByte(UInt8(truncatingIfNeeded: field) << 3 | type.rawValue)
        } else {
            varint(UInt64(field) << 3 | UInt64(type.rawValue))
        }
    }

    public func uint64(field: Int, _ value: UInt64) {
        key(field, .varint)
        varint(value)
    }

    /// int32 fields: negative values take ten bytes, as the format sign-extends them.
    public func int32(field: Int, _ value: Int32) {
        key(field, .varint)
        varint(UInt64(bitPattern: Int64(value)))
    }

    public func bool(field: Int, _ value: Bool) {
        key(field, .varint)
        appendByte(value ? 1 : 0)
    }

    public func fixed64(field: Int, _ value: UInt64) {
        key(field, .fixed64)
        let p = reserve(8)
        UnsafeMutableRawPointer(p).storeBytes(of: value.littleEndian, as: UInt64.self)
        written += 8
    }

    public func bytes(field: Int, _ value: UnsafeRawBufferPointer) {
        key(field, .lengthDelimited)
        varint(UInt64(value.count))
        appendBytes(value)
    }

    public func string(field: Int, _ value: String) {
        key(field, .lengthDelimited)
        varint(UInt64(value.utf8.count))
        append(value)
    }

    public func string(field: Int, _ value: Substring) {
        key(field, .lengthDelimited)
        varint(UInt64(value.utf8.count))
        append(value)
    }

    public func string(field: Int, _ value: StaticString) {
        key(field, .lengthDelimited)
        varint(UInt64(value.utf8CodeUnitCount))
        append(value)
    }

    // MARK: Nested messages and content written in pieces

    /// Where a nested message's content starts; pass it to `endMessage`.
    public struct MessageStart: Sendable {
        fileprivate let lengthAt: Int
    }

    /// Starts a length-delimited field whose content the caller then writes in pieces: a
    /// nested message, or a string from `append` calls.
    @inline(__always) public func beginMessage(field: Int) -> MessageStart {
        key(field, .lengthDelimited)
        let start = MessageStart(lengthAt: written)
        appendByte(0)  // the length, for content under 128 bytes
        return start
    }

    @inline(__always) public func endMessage(_ start: MessageStart) {
        let contentStart = start.lengthAt + 1
        let length = written - contentStart
        if length < 0x80 {
            pointer[start.lengthAt] = UInt8(truncatingIfNeeded: length)
            return
        }
        let size = Self.varintSize(UInt64(length))
        _ = reserve(size - 1)  // may move the bytes: read `pointer` after it
        UnsafeMutableRawPointer(pointer + contentStart + size - 1).copyMemory(from: pointer + contentStart, byteCount: length)  // memmove
        written += size - 1
        Self.writeVarint(UInt64(length), at: pointer + start.lengthAt)
    }

    /// A map entry or other small message with a field-1 string key known at compile time
    /// (under 128 bytes) and a field-2 value written by `value`: the fixed bytes in one step.
    @inline(__always) public func beginKeyedEntry(field: Int, key name: StaticString) -> (entry: MessageStart, value: MessageStart) {
        let entry = beginMessage(field: field)
        let n = name.utf8CodeUnitCount
        guard name.hasPointerRepresentation, n < 0x80 else {
            string(field: 1, name)
            return (entry, beginMessage(field: 2))
        }
        let p = reserve(n + 4)
        p[0] = 0x0A  // field 1, length-delimited
        p[1] = UInt8(truncatingIfNeeded: n)
        (p + 2).initialize(from: name.utf8Start, count: n)
        p[n + 2] = 0x12  // field 2, length-delimited
        p[n + 3] = 0
        written += n + 4
        return (entry, MessageStart(lengthAt: written - 1))
    }

    public func append(_ text: String) {
        if text.utf8.withContiguousStorageIfAvailable({ appendBytes(UnsafeRawBufferPointer($0)) }) == nil {
            var copy = text
            copy.withUTF8 { appendBytes(UnsafeRawBufferPointer($0)) }
        }
    }

    public func append(_ text: Substring) {
        if text.utf8.withContiguousStorageIfAvailable({ appendBytes(UnsafeRawBufferPointer($0)) }) == nil {
            var copy = text
            copy.withUTF8 { appendBytes(UnsafeRawBufferPointer($0)) }
        }
    }

    public func append(_ text: StaticString) {
        if text.hasPointerRepresentation {
            appendBytes(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        } else {
            text.withUTF8Buffer { appendBytes(UnsafeRawBufferPointer($0)) }
        }
    }

    /// A number's decimal digits (Zipkin tag values are text).
    public func appendDecimal(_ value: Int64) {
        var magnitude = value.magnitude
        var digits = 1
        var scan = magnitude
        while scan >= 10 { scan /= 10; digits += 1 }
        let sign = value < 0 ? 1 : 0
        let p = reserve(digits + sign)
        if sign == 1 { p[0] = UInt8(ascii: "-") }
        for i in stride(from: digits - 1, through: 0, by: -1) {
            p[sign + i] = UInt8(ascii: "0") + UInt8(magnitude % 10)
            magnitude /= 10
        }
        written += digits + sign
    }

    public func appendRaw(_ bytes: UnsafeRawBufferPointer) { appendBytes(bytes) }

    // MARK: Varints

    @inline(__always) public func varint(_ value: UInt64) {
        if value < 0x80 {
            appendByte(UInt8(truncatingIfNeeded: value))
        } else {
            let p = reserve(10)
            written += Self.writeVarint(value, at: p)
        }
    }

    public static func varintSize(_ value: UInt64) -> Int {
        var v = value
        var n = 1
        while v >= 0x80 { v >>= 7; n += 1 }
        return n
    }

    @discardableResult
    static func writeVarint(_ value: UInt64, at p: UnsafeMutablePointer<UInt8>) -> Int {
        var v = value
        var i = 0
        while v >= 0x80 {
            p[i] = UInt8(truncatingIfNeeded: v) | 0x80
            v >>= 7
            i += 1
        }
        p[i] = UInt8(v)
        return i + 1
    }

    // MARK: Storage

    @inline(__always) private func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if written + n > capacity { grow(n) }
        return pointer + written
    }

    private func grow(_ n: Int) {
        let newCapacity = max(capacity * 2, written + n)
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: newCapacity)
        bigger.initialize(from: pointer, count: written)
        pointer.deallocate()
        pointer = bigger
        capacity = newCapacity
    }

    @inline(__always) private func appendByte(_ byte: UInt8) {
        reserve(1).initialize(to: byte)
        written += 1
    }

    @inline(__always) private func appendBytes(_ source: UnsafeRawBufferPointer) {
        let n = source.count
        guard let start = source.baseAddress, n > 0 else { return }
        UnsafeMutableRawPointer(reserve(n)).copyMemory(from: start, byteCount: n)
        written += n
    }
}
