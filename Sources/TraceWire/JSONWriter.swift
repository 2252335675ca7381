import TraceModel

/// A small JSON writer appending UTF-8 to a byte buffer. Commas are inserted automatically:
/// call `key(_:)` before each object member's value, and the value methods in order.
///
///     var w = JSONWriter()
///     w.beginObject(); w.key("data"); w.beginArray(); w.append(int: 1); w.endArray(); w.endObject()
///     w.bytes  // {"data":[1]}
public struct JSONWriter: @unchecked Sendable {
    // @unchecked: the bytes live in a raw allocation owned by `storage`, written only after
    // `reserve` has made it unique to this value (copy-on-write, as Array does). Raw because each
    // piece of output is then one capacity check and a store or a memcpy: the sidecar writes
    // about 150 pieces per span, and Array's appends cost ~90 instructions each.
    private final class Storage {
        let pointer: UnsafeMutablePointer<UInt8>
        let capacity: Int

        init(capacity: Int) {
            self.capacity = capacity
            pointer = .allocate(capacity: capacity)
        }

        deinit { pointer.deallocate() }
    }

    private var storage: Storage
    private var written = 0
    /// Bytes written so far, at the start of the storage.
    public var count: Int { written }
    /// True after a complete value (or member) at the current nesting level, so the next one needs a comma.
    private var needsComma = false

    public init(capacity: Int = 256) {
        storage = Storage(capacity: max(capacity, 16))
    }

    /// What was written, as an array (a copy).
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: storage.pointer, count: written)) }

    /// What was written, lent without a copy.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.pointer, count: written))
    }

    /// Forgets what was written but keeps the allocation, to write the next value into it.
    public mutating func removeAll() {
        written = 0
        needsComma = false
    }

    /// Room for `n` more bytes, in memory this value alone owns; returns where they go.
    @inline(__always) private mutating func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if written + n > storage.capacity || !isKnownUniquelyReferenced(&storage) { grow(n) }
        return storage.pointer + written
    }

    private mutating func grow(_ n: Int) {
        let copy = Storage(capacity: written + n > storage.capacity ? max(storage.capacity * 2, written + n) : storage.capacity)
        copy.pointer.initialize(from: storage.pointer, count: written)
        storage = copy
    }

    @inline(__always) private mutating func appendByte(_ byte: UInt8) {
        reserve(1).initialize(to: byte)
        written += 1
    }

    @inline(__always) private mutating func appendBytes(_ source: UnsafeRawBufferPointer) {
        let n = source.count
        guard let start = source.baseAddress, n > 0 else { return }
        UnsafeMutableRawPointer(reserve(n)).copyMemory(from: start, byteCount: n)
        written += n
    }

    @inline(__always) private mutating func appendStatic(_ text: StaticString) {
        if text.hasPointerRepresentation {
            appendBytes(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
        } else {
            text.withUTF8Buffer { appendBytes(UnsafeRawBufferPointer($0)) }
        }
    }

    @inline(__always) private mutating func comma() {
        if needsComma { appendByte(UInt8(ascii: ",")) }
    }

    public mutating func beginObject() {
        comma()
        appendByte(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        appendByte(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        comma()
        appendByte(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        appendByte(UInt8(ascii: "]"))
        needsComma = true
    }

    /// An object member's name; the next value call writes its value.
    public mutating func key(_ name: String) {
        comma()
        appendQuoted(name)
        appendByte(UInt8(ascii: ":"))
        needsComma = false
    }

    /// A member name known to need no escaping (a literal in the caller), copied as is: the
    /// sidecar writes some thirty of these per span.
    public mutating func key(unescaped name: StaticString) {
        if name.hasPointerRepresentation {
            appendMember(UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        } else {
            name.withUTF8Buffer { appendMember(UnsafeRawBufferPointer($0)) }
        }
        needsComma = false
    }

    /// `,"name":` with one capacity check (each check is a runtime call).
    @inline(__always) private mutating func appendMember(_ name: UnsafeRawBufferPointer) {
        let p = reserve(name.count + 4)
        var i = writeComma(at: p)
        i += Self.writeQuoted(name, at: p + i)
        p[i] = UInt8(ascii: ":")
        written += i + 1
    }

    /// A comma at `p` when one is due; returns the bytes written (0 or 1).
    @inline(__always) private func writeComma(at p: UnsafeMutablePointer<UInt8>) -> Int {
        guard needsComma else { return 0 }
        p.initialize(to: UInt8(ascii: ","))
        return 1
    }

    /// `"bytes"` at `p` (the bytes known to need no escaping); returns the bytes written.
    @inline(__always) private static func writeQuoted(_ bytes: UnsafeRawBufferPointer, at p: UnsafeMutablePointer<UInt8>) -> Int {
        p.initialize(to: UInt8(ascii: "\""))
        copy(bytes, to: p + 1)
        p[bytes.count + 1] = UInt8(ascii: "\"")
        return bytes.count + 2
    }

    /// `"name":"value"` (after a comma when one is due) with one capacity check when the value
    /// needs no escaping: a whole tag of the sidecar's spans in one step.
    public mutating func member(unescaped name: StaticString, _ value: String) {
        if value.utf8.withContiguousStorageIfAvailable({ appendMember(name, UnsafeRawBufferPointer($0)) }) == nil {
            var copy = value
            copy.withUTF8 { appendMember(name, UnsafeRawBufferPointer($0)) }
        }
        needsComma = true
    }

    private mutating func appendMember(_ name: StaticString, _ value: UnsafeRawBufferPointer) {
        let m = value.count
        guard name.hasPointerRepresentation, JSONPlainBytes.firstSpecial(value) == m else {
            key(unescaped: name)
            appendQuotedValue(value)
            return
        }
        let nameBytes = UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
        let p = reserve(nameBytes.count + m + 6)
        var i = writeComma(at: p)
        i += Self.writeQuoted(nameBytes, at: p + i)
        p[i] = UInt8(ascii: ":")
        i += 1
        i += Self.writeQuoted(value, at: p + i)
        written += i
    }

    /// Copies `source` to `p`. Short pieces (tag names and most values) move as two overlapping
    /// eight-byte words or byte by byte: a call to memcpy costs more than such a copy.
    @inline(__always)
    static func copy(_ source: UnsafeRawBufferPointer, to p: UnsafeMutablePointer<UInt8>) {
        let n = source.count
        guard let start = source.baseAddress else { return }
        let to = UnsafeMutableRawPointer(p)
        if n >= 8 && n <= 16 {
            to.storeBytes(of: start.loadUnaligned(as: UInt64.self), as: UInt64.self)
            to.storeBytes(of: start.loadUnaligned(fromByteOffset: n - 8, as: UInt64.self), toByteOffset: n - 8, as: UInt64.self)
        } else if n < 8 {
            for i in 0..<n { p[i] = start.load(fromByteOffset: i, as: UInt8.self) }
        } else {
            to.copyMemory(from: start, byteCount: n)
        }
    }

    /// A string value, with one capacity check when it needs no escaping (nearly always).
    private mutating func appendQuotedValue(_ utf8: UnsafeRawBufferPointer) {
        let n = utf8.count
        guard JSONPlainBytes.firstSpecial(utf8) == n else {
            comma()
            appendByte(UInt8(ascii: "\""))
            appendEscaped(utf8)
            appendByte(UInt8(ascii: "\""))
            return
        }
        let p = reserve(n + 3)
        let i = writeComma(at: p)
        written += i + Self.writeQuoted(utf8, at: p + i)
    }

    public mutating func append(string: String) {
        if string.utf8.withContiguousStorageIfAvailable({ appendQuotedValue(UnsafeRawBufferPointer($0)) }) == nil {
            var copy = string
            copy.withUTF8 { appendQuotedValue(UnsafeRawBufferPointer($0)) }
        }
        needsComma = true
    }

    public mutating func append(string: Substring) {
        if string.utf8.withContiguousStorageIfAvailable({ appendQuotedValue(UnsafeRawBufferPointer($0)) }) == nil {
            var copy = String(string)
            copy.withUTF8 { appendQuotedValue(UnsafeRawBufferPointer($0)) }
        }
        needsComma = true
    }

    /// A string value written in pieces (`beginString`, any number of `appendStringContent`,
    /// `endString`), for values the caller would otherwise concatenate first, like a URL from its
    /// authority and path.
    public mutating func beginString() {
        comma()
        appendByte(UInt8(ascii: "\""))
    }

    public mutating func appendStringContent(_ literal: StaticString) {
        literal.withUTF8Buffer { appendEscaped(UnsafeRawBufferPointer($0)) }
    }

    public mutating func appendStringContent(_ s: String) {
        if s.utf8.withContiguousStorageIfAvailable({ appendEscaped(UnsafeRawBufferPointer($0)) }) == nil {
            var copy = s
            copy.withUTF8 { appendEscaped(UnsafeRawBufferPointer($0)) }
        }
    }

    public mutating func appendStringContent(_ s: Substring) {
        if s.utf8.withContiguousStorageIfAvailable({ appendEscaped(UnsafeRawBufferPointer($0)) }) == nil {
            appendStringContent(String(s))
        }
    }

    public mutating func endString() {
        appendByte(UInt8(ascii: "\""))
        needsComma = true
    }

    public mutating func append(int: Int64) {
        comma()
        appendDecimal(int)
        needsComma = true
    }

    public mutating func append(int: Int) { append(int: Int64(int)) }

    /// An integer as a JSON string (`"42"`), for formats whose values are all strings, without
    /// building the String first.
    public mutating func append(quotedInt: Int64) {
        let digits = Self.decimalDigits(quotedInt.magnitude)
        let sign = quotedInt < 0 ? 1 : 0
        let p = reserve(digits + sign + 3)
        var i = 0
        if needsComma {
            p[0] = UInt8(ascii: ",")
            i = 1
        }
        p[i] = UInt8(ascii: "\"")
        if sign == 1 { p[i + 1] = UInt8(ascii: "-") }
        Self.writeDecimal(quotedInt.magnitude, digits: digits, to: p + i + 1 + sign)
        p[i + 1 + sign + digits] = UInt8(ascii: "\"")
        written += i + sign + digits + 2
        needsComma = true
    }

    public mutating func append(uint: UInt64) {
        comma()
        appendDecimal(uint)
        needsComma = true
    }

    /// Non-finite doubles have no JSON form: they are written as `null`.
    public mutating func append(double: Double) {
        comma()
        if double.isFinite {
            if double == double.rounded(.towardZero), abs(double) < 1e15 {
                appendDecimal(Int64(double))  // 72 rather than 72.0, as Go and Jackson print
            } else {
                appendContents(of: double.description)
            }
        } else {
            appendStatic("null")
        }
        needsComma = true
    }

    public mutating func append(bool: Bool) {
        comma()
        appendStatic(bool ? "true" : "false")
        needsComma = true
    }

    public mutating func appendNull() {
        comma()
        appendStatic("null")
        needsComma = true
    }

    /// A pre-encoded JSON value, copied verbatim.
    public mutating func append(rawJSON: some Sequence<UInt8>) {
        comma()
        if rawJSON.withContiguousStorageIfAvailable({ appendBytes(UnsafeRawBufferPointer($0)) }) == nil {
            let copy = Array(rawJSON)
            copy.withUnsafeBytes { appendBytes($0) }
        }
        needsComma = true
    }

    /// Shorthands for object members.
    public mutating func member(_ name: String, _ value: String) { key(name); append(string: value) }
    public mutating func member(_ name: String, _ value: Int64) { key(name); append(int: value) }
    public mutating func member(_ name: String, _ value: Int) { key(name); append(int: Int64(value)) }
    public mutating func member(_ name: String, _ value: UInt64) { key(name); append(uint: value) }
    public mutating func member(_ name: String, _ value: Bool) { key(name); append(bool: value) }
    public mutating func member(_ name: String, _ value: Double) { key(name); append(double: value) }

    // MARK: - Encoding

    /// A string's bytes as they are (known to need no escaping).
    private mutating func appendContents(of s: String) {
        var copy = s
        copy.withUTF8 { appendBytes(UnsafeRawBufferPointer($0)) }
    }

    private mutating func appendQuoted(_ s: String) {
        appendByte(UInt8(ascii: "\""))
        appendStringContent(s)
        appendByte(UInt8(ascii: "\""))
    }

    /// An id as a quoted lower-hex string (16 digits, or 32 for a 128-bit trace id), written
    /// straight into the output instead of through a String.
    public mutating func append(traceID: TraceID) {
        comma()
        if traceID.high == 0 {
            appendQuotedHex(traceID.low, nil)
        } else {
            appendQuotedHex(traceID.high, traceID.low)
        }
        needsComma = true
    }

    public mutating func append(spanID: SpanID) {
        comma()
        appendQuotedHex(spanID.value, nil)
        needsComma = true
    }

    private mutating func appendQuotedHex(_ first: UInt64, _ second: UInt64?) {
        let length = second == nil ? 18 : 34
        let buf = UnsafeMutableBufferPointer(start: reserve(length), count: length)
        buf[0] = UInt8(ascii: "\"")
        Hex.write(first, into: buf, at: 1)
        if let second { Hex.write(second, into: buf, at: 17) }
        buf[length - 1] = UInt8(ascii: "\"")
        written += length
    }

    private mutating func appendEscaped(_ utf8: UnsafeRawBufferPointer) {
        let n = utf8.count
        // Runs that need no escaping are copied whole (a clean string in one copy).
        var runStart = 0
        while runStart < n {
            let i = JSONPlainBytes.firstSpecial(utf8, from: runStart)
            if runStart < i { appendBytes(UnsafeRawBufferPointer(rebasing: utf8[runStart..<i])) }
            guard i < n else { return }
            let c = utf8[i]
            switch c {
            case UInt8(ascii: "\""): appendStatic("\\\"")
            case UInt8(ascii: "\\"): appendStatic("\\\\")
            case 0x0A: appendStatic("\\n")
            case 0x0D: appendStatic("\\r")
            case 0x09: appendStatic("\\t")
            case 0x08: appendStatic("\\b")
            case 0x0C: appendStatic("\\f")
            default:
                let p = reserve(6)
                p.initialize(to: UInt8(ascii: "\\"))
                p[1] = UInt8(ascii: "u")
                p[2] = UInt8(ascii: "0")
                p[3] = UInt8(ascii: "0")
                p[4] = Hex.digit(UInt64(c >> 4))
                p[5] = Hex.digit(UInt64(c & 0xF))
                written += 6
            }
            runStart = i + 1
        }
    }

    private mutating func appendDecimal(_ v: UInt64) {
        let digits = Self.decimalDigits(v)
        Self.writeDecimal(v, digits: digits, to: reserve(digits))
        written += digits
    }

    @inline(__always) static func decimalDigits(_ v: UInt64) -> Int {
        var digits = 1
        var x = v
        while x >= 10 {
            digits += 1
            x /= 10
        }
        return digits
    }

    @inline(__always) static func writeDecimal(_ v: UInt64, digits: Int, to p: UnsafeMutablePointer<UInt8>) {
        var x = v
        var i = digits
        while i > 0 {
            i -= 1
            p[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: x % 10)
            x /= 10
        }
    }

    private mutating func appendDecimal(_ v: Int64) {
        if v < 0 {
            appendByte(UInt8(ascii: "-"))
            appendDecimal(v.magnitude)
        } else {
            appendDecimal(UInt64(v))
        }
    }
}

extension JSONWriter {
    /// Writes a parsed JSON value back out.
    public mutating func append(_ value: JSONValue) {
        switch value {
        case .null: appendNull()
        case .bool(let b): append(bool: b)
        case .number(let text): append(rawJSON: text.utf8)
        case .string(let s): append(string: s)
        case .array(let values):
            beginArray()
            for v in values { append(v) }
            endArray()
        case .object(let members):
            beginObject()
            for m in members {
                key(m.key)
                append(m.value)
            }
            endObject()
        }
    }

    /// An attribute value as a plain JSON value (arrays as arrays, bytes as base64 strings).
    mutating func append(attributeValue v: AttributeValue) {
        switch v {
        case .string(let s): append(string: s)
        case .bool(let b): append(bool: b)
        case .int(let i): append(int: i)
        case .double(let d): if d.isFinite { append(double: d) } else { append(string: String(d)) }
        case .bytes(let b): append(string: Base64.encode(b))
        case .array(let values):
            beginArray()
            for x in values { append(attributeValue: x) }
            endArray()
        }
    }
}
