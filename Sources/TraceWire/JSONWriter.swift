import TraceModel

/// A small JSON writer appending UTF-8 to a byte buffer. Commas are inserted automatically:
/// call `key(_:)` before each object member's value, and the value methods in order.
///
///     var w = JSONWriter()
///     w.beginObject(); w.key("data"); w.beginArray(); w.append(int: 1); w.endArray(); w.endObject()
///     w.bytes  // {"data":[1]}
public struct JSONWriter: @unchecked Sendable {
    // @unchecked: the bytes live in a raw allocation owned by `owner`, and are written only once
    // `reserve` has made `owner` unique to this value (copy-on-write, as Array does). A raw
    // buffer because Array's own appends cost some ninety instructions each, and the sidecar
    // makes about a hundred of them per span.
    final class Owner {
        let pointer: UnsafeMutablePointer<UInt8>
        let capacity: Int

        init(capacity: Int) {
            self.capacity = capacity
            pointer = .allocate(capacity: capacity)
        }

        deinit { pointer.deallocate() }
    }

    private var owner: Owner
    /// Bytes written so far, at the start of `owner.pointer`.
    public private(set) var count = 0
    /// True after a complete value (or member) at the current nesting level, so the next one needs a comma.
    @usableFromInline var needsComma = false

    public init(capacity: Int = 256) {
        owner = Owner(capacity: max(capacity, 16))
    }

    /// What was written, as an array (a copy).
    public var bytes: [UInt8] { Array(UnsafeBufferPointer(start: owner.pointer, count: count)) }

    /// Room for `n` more bytes, in memory this value alone owns; returns where they go.
    @inline(__always) private mutating func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        if count + n > owner.capacity || !isKnownUniquelyReferenced(&owner) {
            let copy = Owner(capacity: count + n > owner.capacity ? max(owner.capacity * 2, count + n) : owner.capacity)
            copy.pointer.initialize(from: owner.pointer, count: count)
            owner = copy
        }
        return owner.pointer + count
    }

    @inline(__always) mutating func appendByte(_ byte: UInt8) {
        reserve(1).initialize(to: byte)
        count += 1
    }

    @inline(__always) mutating func appendBytes(_ source: UnsafeBufferPointer<UInt8>) {
        guard let start = source.baseAddress, source.count > 0 else { return }
        reserve(source.count).initialize(from: start, count: source.count)
        count += source.count
    }

    @inline(__always) mutating func appendStatic(_ text: StaticString) {
        text.withUTF8Buffer { appendBytes($0) }
    }

    @inline(__always) mutating func comma() {
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

    public mutating func append(string: String) {
        comma()
        appendQuoted(string)
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
        comma()
        appendByte(UInt8(ascii: "\""))
        appendDecimal(quotedInt)
        appendByte(UInt8(ascii: "\""))
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
                var text = double.description
                text.withUTF8 { appendBytes($0) }
            }
        } else {
            appendStatic("null")
        }
        needsComma = true
    }

    public mutating func append(bool: Bool) {
        comma()
        if bool { appendStatic("true") } else { appendStatic("false") }
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
        if rawJSON.withContiguousStorageIfAvailable({ appendBytes($0) }) == nil {
            for byte in rawJSON { appendByte(byte) }
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

    @usableFromInline mutating func appendQuoted(_ s: String) {
        appendByte(UInt8(ascii: "\""))
        // Native and small strings hand out their bytes directly; others are made contiguous once.
        if s.utf8.withContiguousStorageIfAvailable({ appendEscaped($0) }) == nil {
            var copy = s
            copy.withUTF8 { appendEscaped($0) }
        }
        appendByte(UInt8(ascii: "\""))
    }

    /// A member name known to need no escaping (a literal in the caller), copied as is: the
    /// sidecar writes some thirty of these per span.
    public mutating func key(unescaped name: StaticString) {
        comma()
        appendByte(UInt8(ascii: "\""))
        name.withUTF8Buffer { appendBytes($0) }
        appendByte(UInt8(ascii: "\""))
        appendByte(UInt8(ascii: ":"))
        needsComma = false
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
        var scratch: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)  // 40 bytes: 32 digits and quotes
        withUnsafeMutableBytes(of: &scratch) { raw in
            let buf = raw.bindMemory(to: UInt8.self)
            buf[0] = UInt8(ascii: "\"")
            Hex.write(first, into: buf, at: 1)
            var end = 17
            if let second {
                Hex.write(second, into: buf, at: 17)
                end = 33
            }
            buf[end] = UInt8(ascii: "\"")
            appendBytes(UnsafeBufferPointer(rebasing: buf[0...end]))
        }
    }

    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        let n = utf8.count
        var i = 0
        // Most strings need no escaping: find that out in one tight pass, then copy once.
        while i < n {
            let c = utf8[i]
            if c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") { break }
            i += 1
        }
        if i == n {
            appendBytes(utf8)
            return
        }
        var runStart = 0
        while i < n {
            let c = utf8[i]
            if c >= 0x20 && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            if runStart < i { appendBytes(UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
            appendByte(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""): appendByte(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): appendByte(UInt8(ascii: "\\"))
            case 0x0A: appendByte(UInt8(ascii: "n"))
            case 0x0D: appendByte(UInt8(ascii: "r"))
            case 0x09: appendByte(UInt8(ascii: "t"))
            case 0x08: appendByte(UInt8(ascii: "b"))
            case 0x0C: appendByte(UInt8(ascii: "f"))
            default:
                appendStatic("u00")
                appendByte(Hex.digit(UInt64(c >> 4)))
                appendByte(Hex.digit(UInt64(c & 0xF)))
            }
            i += 1
            runStart = i
        }
        if runStart < n { appendBytes(UnsafeBufferPointer(rebasing: utf8[runStart..<n])) }
    }

    @usableFromInline mutating func appendDecimal(_ v: UInt64) {
        if v < 10 {
            appendByte(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v))
            return
        }
        var tmp: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, enough for 20 digits
        withUnsafeMutableBytes(of: &tmp) { buf in
            var i = buf.count
            var x = v
            while x > 0 {
                i -= 1
                buf[i] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: x % 10)
                x /= 10
            }
            appendBytes(UnsafeBufferPointer(rebasing: buf.bindMemory(to: UInt8.self)[i...]))
        }
    }

    @usableFromInline mutating func appendDecimal(_ v: Int64) {
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
