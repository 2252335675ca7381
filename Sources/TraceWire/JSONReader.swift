import TraceModel

/// A pull parser over a UTF-8 JSON body: strict RFC 8259 syntax, depth-limited, no recursion
/// beyond the nesting it is asked to skip. Errors carry line, column and byte offset.
///
///     var r = JSONReader(body)
///     try r.beginObject()
///     while let key = try r.nextKey() {
///         switch key { case "name": name = try r.readString(); default: try r.skipValue() }
///     }
public struct JSONReader {
    public enum Token: Sendable, Equatable { case object, array, string, number, bool, null }

    public let bytes: [UInt8]
    public private(set) var position: Int = 0
    public let maxDepth: Int
    public private(set) var depth = 0
    /// A complete value was read at the current level, so the next member/element needs a comma.
    var afterValue = false

    public init(_ bytes: [UInt8], maxDepth: Int = WireLimits.default.maxJSONDepth) {
        self.bytes = bytes
        self.maxDepth = min(max(1, maxDepth), 1024)  // bounded: skipping recurses per level
    }

    // MARK: - Errors

    public func error(_ message: String, at offset: Int? = nil) -> WireError {
        let at = min(offset ?? position, bytes.count)
        var line = 1, column = 1
        for i in 0..<at {
            if bytes[i] == 0x0A { line += 1; column = 1 } else { column += 1 }
        }
        return WireError("malformed JSON: \(message) at line \(line), column \(column) (byte \(at))")
    }

    private func unexpected(_ expected: String) -> WireError {
        guard position < bytes.count else { return error("unexpected end of input, expected \(expected)") }
        let c = bytes[position]
        let shown = (c >= 0x20 && c < 0x7F) ? "'\(Character(Unicode.Scalar(c)))'" : "byte 0x\(String(c, radix: 16))"
        return error("unexpected \(shown), expected \(expected)")
    }

    // MARK: - Structure

    @inline(__always) mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    /// True when only whitespace remains.
    public mutating func isAtEnd() -> Bool {
        skipWhitespace()
        return position >= bytes.count
    }

    /// Throws unless only whitespace remains.
    public mutating func expectEnd() throws(WireError) {
        guard isAtEnd() else { throw unexpected("end of input") }
    }

    /// The kind of the next value, without consuming it.
    public mutating func peek() throws(WireError) -> Token {
        skipWhitespace()
        guard position < bytes.count else { throw unexpected("a value") }
        switch bytes[position] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        default: throw unexpected("a value")
        }
    }

    private mutating func enter(_ open: UInt8, _ name: String) throws(WireError) {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == open else { throw unexpected(name) }
        guard depth < maxDepth else { throw WireError("JSON nested deeper than \(maxDepth) levels") }
        position += 1
        depth += 1
        afterValue = false
    }

    public mutating func beginObject() throws(WireError) { try enter(UInt8(ascii: "{"), "'{'") }
    public mutating func beginArray() throws(WireError) { try enter(UInt8(ascii: "["), "'['") }

    /// The next member name of the current object, or nil after consuming its closing brace.
    public mutating func nextKey() throws(WireError) -> String? {
        guard let raw = try nextRawKey() else { return nil }
        return String(decoding: raw, as: UTF8.self)
    }

    /// Like `nextKey` but returns the (unescaped) UTF-8 bytes of the name.
    public mutating func nextRawKey() throws(WireError) -> ArraySlice<UInt8>? {
        skipWhitespace()
        guard position < bytes.count else { throw unexpected("'}'") }
        if bytes[position] == UInt8(ascii: "}") {
            position += 1
            depth -= 1
            afterValue = true
            return nil
        }
        if afterValue {
            guard bytes[position] == UInt8(ascii: ",") else { throw unexpected("',' or '}'") }
            position += 1
            skipWhitespace()
        }
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw unexpected("a member name") }
        let key = try readRawString()
        skipWhitespace()
        guard position < bytes.count, bytes[position] == UInt8(ascii: ":") else { throw unexpected("':'") }
        position += 1
        afterValue = false
        return key
    }

    /// True if the current array has another element; false after consuming its closing bracket.
    public mutating func nextElement() throws(WireError) -> Bool {
        skipWhitespace()
        guard position < bytes.count else { throw unexpected("']'") }
        if bytes[position] == UInt8(ascii: "]") {
            position += 1
            depth -= 1
            afterValue = true
            return false
        }
        if afterValue {
            guard bytes[position] == UInt8(ascii: ",") else { throw unexpected("',' or ']'") }
            position += 1
            skipWhitespace()
            guard position < bytes.count, bytes[position] != UInt8(ascii: "]") else { throw unexpected("a value") }
        }
        return true
    }

    // MARK: - Scalars

    /// Consumes `null` if it is next.
    public mutating func consumeNull() -> Bool {
        skipWhitespace()
        guard position + 4 <= bytes.count, bytes[position] == UInt8(ascii: "n"), bytes[position + 1] == UInt8(ascii: "u"),
            bytes[position + 2] == UInt8(ascii: "l"), bytes[position + 3] == UInt8(ascii: "l")
        else { return false }
        position += 4
        afterValue = true
        return true
    }

    public mutating func readNull() throws(WireError) {
        guard consumeNull() else { throw unexpected("null") }
    }

    public mutating func readBool() throws(WireError) -> Bool {
        skipWhitespace()
        if matchLiteral("true") { return true }
        if matchLiteral("false") { return false }
        throw unexpected("true or false")
    }

    private mutating func matchLiteral(_ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard position + n <= bytes.count else { return false }
        let p = literal.utf8Start
        for i in 0..<n where bytes[position + i] != p[i] { return false }
        position += n
        afterValue = true
        return true
    }

    public mutating func readString() throws(WireError) -> String {
        String(decoding: try readRawString(), as: UTF8.self)
    }

    /// The string's UTF-8 bytes, unescaped. A slice of the body when there are no escapes.
    public mutating func readRawString() throws(WireError) -> ArraySlice<UInt8> {
        skipWhitespace()
        guard position < bytes.count, bytes[position] == UInt8(ascii: "\"") else { throw unexpected("a string") }
        let start = position + 1
        var i = start
        var escaped = false
        let n = bytes.count
        while true {
            i = bytes.withUnsafeBytes { JSONPlainBytes.firstSpecial($0, from: i) }
            guard i < n else { throw error("unterminated string", at: start - 1) }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { break }
            guard c == UInt8(ascii: "\\") else { throw error("unescaped control character in string", at: i) }
            escaped = true
            i += 2
        }
        position = i + 1
        afterValue = true
        if !escaped { return bytes[start..<i] }
        return ArraySlice(try unescape(start, i))
    }

    private func unescape(_ start: Int, _ end: Int) throws(WireError) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(end - start)
        var i = start
        while i < end {
            let c = bytes[i]
            guard c == UInt8(ascii: "\\") else {
                out.append(c)
                i += 1
                continue
            }
            guard i + 1 < end else { throw error("bad escape", at: i) }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\""))
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\"))
            case UInt8(ascii: "/"): out.append(UInt8(ascii: "/"))
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                guard let hi = hex4(i, end) else { throw error("bad \\u escape", at: i - 2) }
                i += 4
                var scalar: UInt32 = UInt32(hi)
                if hi >= 0xD800 && hi < 0xDC00 {
                    // A high surrogate must be followed by \uDC00-\uDFFF; otherwise U+FFFD.
                    if i + 6 <= end, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u"),
                        let lo = hex4(i + 2, end), lo >= 0xDC00 && lo < 0xE000
                    {
                        scalar = 0x10000 + ((UInt32(hi) - 0xD800) << 10) + (UInt32(lo) - 0xDC00)
                        i += 6
                    } else {
                        scalar = 0xFFFD
                    }
                } else if hi >= 0xDC00 && hi < 0xE000 {
                    scalar = 0xFFFD
                }
                appendUTF8(scalar, to: &out)
            default:
                throw error("bad escape", at: i - 2)
            }
        }
        return out
    }

    private func hex4(_ at: Int, _ end: Int) -> UInt16? {
        guard at + 4 <= end else { return nil }
        var v: UInt16 = 0
        for k in 0..<4 {
            let c = bytes[at + k]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: return nil
            }
            v = v << 4 | UInt16(d)
        }
        return v
    }

    private func appendUTF8(_ s: UInt32, to out: inout [UInt8]) {
        switch s {
        case 0..<0x80: out.append(UInt8(s))
        case 0x80..<0x800:
            out.append(UInt8(0xC0 | (s >> 6)))
            out.append(UInt8(0x80 | (s & 0x3F)))
        case 0x800..<0x10000:
            out.append(UInt8(0xE0 | (s >> 12)))
            out.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (s & 0x3F)))
        default:
            out.append(UInt8(0xF0 | (s >> 18)))
            out.append(UInt8(0x80 | ((s >> 12) & 0x3F)))
            out.append(UInt8(0x80 | ((s >> 6) & 0x3F)))
            out.append(UInt8(0x80 | (s & 0x3F)))
        }
    }

    /// Scans a number token (RFC 8259 grammar) and returns its bytes and whether it is a plain integer.
    public mutating func readRawNumber() throws(WireError) -> (text: ArraySlice<UInt8>, isInteger: Bool) {
        skipWhitespace()
        let start = position
        var i = position
        let n = bytes.count
        func digits(_ i: inout Int) -> Int {
            let s = i
            while i < n, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            return i - s
        }
        if i < n, bytes[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let intDigits = digits(&i)
        guard intDigits > 0 else { throw unexpected("a number") }
        if intDigits > 1, bytes[intStart] == UInt8(ascii: "0") { throw error("leading zero in number", at: intStart) }
        var isInteger = true
        if i < n, bytes[i] == UInt8(ascii: ".") {
            i += 1
            isInteger = false
            guard digits(&i) > 0 else { position = i; throw unexpected("a digit") }
        }
        if i < n, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            isInteger = false
            if i < n, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&i) > 0 else { position = i; throw unexpected("a digit") }
        }
        position = i
        afterValue = true
        return (bytes[start..<i], isInteger)
    }

    public mutating func readDouble() throws(WireError) -> Double {
        let start = position
        let (text, _) = try readRawNumber()
        guard let d = Double(String(decoding: text, as: UTF8.self)) else { throw error("bad number", at: start) }
        return d
    }

    /// A JSON number that is an integer in Int64 range (integral doubles like 1.5e3 accepted).
    public mutating func readInt64() throws(WireError) -> Int64 {
        skipWhitespace()
        let start = position
        let (text, isInteger) = try readRawNumber()
        guard let v = JSONNumbers.int64(text, isInteger: isInteger) else { throw error("expected a 64-bit integer", at: start) }
        return v
    }

    public mutating func readUInt64() throws(WireError) -> UInt64 {
        skipWhitespace()
        let start = position
        let (text, isInteger) = try readRawNumber()
        guard let v = JSONNumbers.uint64(text, isInteger: isInteger) else {
            throw error("expected a non-negative 64-bit integer", at: start)
        }
        return v
    }

    /// Skips one value of any kind, checking its syntax and nesting depth.
    public mutating func skipValue() throws(WireError) {
        switch try peek() {
        case .object:
            try beginObject()
            while try nextRawKey() != nil { try skipValue() }
        case .array:
            try beginArray()
            while try nextElement() { try skipValue() }
        case .string: _ = try skipString()
        case .number: _ = try readRawNumber()
        case .bool: _ = try readBool()
        case .null: try readNull()
        }
    }

    private mutating func skipString() throws(WireError) {
        // Validates escapes too, so a skipped string is as strict as a read one.
        _ = try readRawString()
    }
}

/// Number text -> integers, shared by the reader and lenient "number or string" fields.
public enum JSONNumbers {
    public static func uint64(_ text: some Collection<UInt8>, isInteger: Bool) -> UInt64? {
        if isInteger {
            guard !text.isEmpty, text.count <= 20 else { return nil }
            var v: UInt64 = 0
            for c in text {
                guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
                let (m, o1) = v.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
                guard !o1, !o2 else { return nil }
                v = a
            }
            return v
        }
        guard let d = Double(String(decoding: text, as: UTF8.self)), d.isFinite, d >= 0, d == d.rounded(),
            d < 18_446_744_073_709_551_616.0
        else { return nil }
        return UInt64(d)
    }

    public static func int64(_ text: some Collection<UInt8>, isInteger: Bool) -> Int64? {
        guard let first = text.first else { return nil }
        if first == UInt8(ascii: "-") {
            guard let m = uint64(text.dropFirst(), isInteger: isInteger), m <= UInt64(Int64.max) + 1 else { return nil }
            return m == UInt64(Int64.max) + 1 ? Int64.min : -Int64(m)
        }
        guard let m = uint64(text, isInteger: isInteger), m <= UInt64(Int64.max) else { return nil }
        return Int64(m)
    }

    /// Parses a string holding a JSON-style number ("123", "-5", "1e3"), as OTLP JSON sends 64-bit ints.
    public static func int64(string: some Collection<UInt8>) -> Int64? {
        let isInteger = !string.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        return int64(string, isInteger: isInteger)
    }

    public static func uint64(string: some Collection<UInt8>) -> UInt64? {
        let isInteger = !string.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }
        return uint64(string, isInteger: isInteger)
    }
}
