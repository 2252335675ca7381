/// A parsed JSON document. Numbers keep their source text so 64-bit integers survive.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    /// Members in document order (duplicates kept).
    case object([(key: String, value: JSONValue)])

    public static func == (a: JSONValue, b: JSONValue) -> Bool {
        switch (a, b) {
        case (.null, .null): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.number(let x), .number(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.object(let x), .object(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// The first member named `key` of an object.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    public subscript(index: Int) -> JSONValue? {
        guard case .array(let values) = self, values.indices.contains(index) else { return nil }
        return values[index]
    }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var isNull: Bool { if case .null = self { return true } else { return false } }

    public var int64Value: Int64? {
        guard case .number(let t) = self else { return nil }
        return JSONNumbers.int64(string: t.utf8)
    }

    public var doubleValue: Double? {
        guard case .number(let t) = self else { return nil }
        return Double(t)
    }

    /// Compact JSON text.
    public var jsonBytes: [UInt8] {
        var w = JSONWriter()
        w.append(self)
        return w.bytes
    }
}

public enum JSONParser {
    /// Parses a complete document (trailing whitespace only), nesting at most `maxDepth` levels.
    public static func parse(_ bytes: [UInt8], maxDepth: Int = WireLimits.default.maxJSONDepth) throws(WireError) -> JSONValue {
        var r = JSONReader(bytes, maxDepth: maxDepth)
        let v = try r.readValue()
        try r.expectEnd()
        return v
    }
}

extension JSONReader {
    /// Reads one value of any kind into a `JSONValue` tree.
    public mutating func readValue() throws(WireError) -> JSONValue {
        switch try peek() {
        case .object:
            try beginObject()
            var members = [(key: String, value: JSONValue)]()
            while let k = try nextKey() { members.append((k, try readValue())) }
            return .object(members)
        case .array:
            try beginArray()
            var values = [JSONValue]()
            while try nextElement() { values.append(try readValue()) }
            return .array(values)
        case .string: return .string(try readString())
        case .number: return .number(String(decoding: try readRawNumber().text, as: UTF8.self))
        case .bool: return .bool(try readBool())
        case .null:
            try readNull()
            return .null
        }
    }
}
