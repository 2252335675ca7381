import TraceModel

/// A small JSON writer appending UTF-8 to a byte buffer. Commas are inserted automatically:
/// call `key(_:)` before each object member's value, and the value methods in order.
///
///     var w = JSONWriter()
///     w.beginObject(); w.key("data"); w.beginArray(); w.append(int: 1); w.endArray(); w.endObject()
///     w.bytes  // {"data":[1]}
public struct JSONWriter: Sendable {
    public var bytes: [UInt8]
    /// True after a complete value (or member) at the current nesting level, so the next one needs a comma.
    @usableFromInline var needsComma = false

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    @inlinable mutating func comma() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    public mutating func beginObject() {
        comma()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        comma()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// An object member's name; the next value call writes its value.
    public mutating func key(_ name: String) {
        comma()
        appendQuoted(name)
        bytes.append(UInt8(ascii: ":"))
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
        bytes.append(UInt8(ascii: "\""))
        appendDecimal(quotedInt)
        bytes.append(UInt8(ascii: "\""))
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
                bytes.append(contentsOf: double.description.utf8)
            }
        } else {
            bytes.append(contentsOf: "null".utf8)
        }
        needsComma = true
    }

    public mutating func append(bool: Bool) {
        comma()
        bytes.append(contentsOf: bool ? "true".utf8 : "false".utf8)
        needsComma = true
    }

    public mutating func appendNull() {
        comma()
        bytes.append(contentsOf: "null".utf8)
        needsComma = true
    }

    /// A pre-encoded JSON value, copied verbatim.
    public mutating func append(rawJSON: some Sequence<UInt8>) {
        comma()
        bytes.append(contentsOf: rawJSON)
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
        bytes.append(UInt8(ascii: "\""))
        // Native and small strings hand out their bytes directly; others are made contiguous once.
        if s.utf8.withContiguousStorageIfAvailable({ appendEscaped($0) }) == nil {
            var copy = s
            copy.withUTF8 { appendEscaped($0) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A member name known to need no escaping (a literal in the caller), copied as is: the
    /// sidecar writes some thirty of these per span.
    public mutating func key(unescaped name: StaticString) {
        comma()
        bytes.append(UInt8(ascii: "\""))
        name.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
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
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buf[0...end]))
        }
    }

    private mutating func appendEscaped(_ utf8: UnsafeBufferPointer<UInt8>) {
        let n = utf8.count
        var i = 0
        // Runs that need no escaping are copied whole (a clean string in one append).
        var runStart = 0
        while i < n {
            let c = utf8[i]
            if c >= 0x20 && c != UInt8(ascii: "\"") && c != UInt8(ascii: "\\") {
                i += 1
                continue
            }
            if runStart < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) }
            bytes.append(UInt8(ascii: "\\"))
            switch c {
            case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
            case 0x0A: bytes.append(UInt8(ascii: "n"))
            case 0x0D: bytes.append(UInt8(ascii: "r"))
            case 0x09: bytes.append(UInt8(ascii: "t"))
            case 0x08: bytes.append(UInt8(ascii: "b"))
            case 0x0C: bytes.append(UInt8(ascii: "f"))
            default:
                bytes.append(contentsOf: "u00".utf8)
                bytes.append(Hex.digit(UInt64(c >> 4)))
                bytes.append(Hex.digit(UInt64(c & 0xF)))
            }
            i += 1
            runStart = i
        }
        if runStart < n { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<n])) }
    }

    @usableFromInline mutating func appendDecimal(_ v: UInt64) {
        if v < 10 {
            bytes.append(UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: v))
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
            bytes.append(contentsOf: buf[i...])
        }
    }

    @usableFromInline mutating func appendDecimal(_ v: Int64) {
        if v < 0 {
            bytes.append(UInt8(ascii: "-"))
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
