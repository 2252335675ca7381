import TraceModel

// The OTLP/JSON decoder's attributes, AnyValues and scalars; `OTLPJSON.swift` reads the
// request's structure (resources, scopes, spans, events, links) and calls these.
extension OTLPJSON.Decoder {
    // MARK: Attributes

    /// `[{"key": k, "value": AnyValue}, ...]`, string values truncated to the limit.
    mutating func readAttributes() throws(WireError) -> [Attribute] {
        var out = [Attribute]()
        try forEachElement(expecting: "an array of key/value objects") { (d: inout Self) throws(WireError) in
            guard let (key, value) = try d.readKeyValue() else { return }
            out.append(Attribute(key, d.limiter.limit(value.attributeValue)))
        }
        return out
    }

    /// Calls `body` for each element of a JSON array, with `path` naming the element.
    mutating func forEachElement(expecting what: String, _ body: (inout Self) throws(WireError) -> Void) throws(WireError) {
        try expect(.array, what)
        let base = path
        try reader.beginArray()
        var n = 0
        while try reader.nextElement() {
            path = base + "[\(n)]"
            n += 1
            try body(&self)
        }
    }

    /// `{"values": [...]}`, the shape of both ArrayValue and KeyValueList: `element` reads
    /// one member, nil to leave it out.
    mutating func readValuesObject<T>(_ element: (inout Self) throws(WireError) -> T?) throws(WireError) -> [T] {
        try expect(.object, "an object")
        let base = path
        try reader.beginObject()
        var out = [T]()
        while let k = try reader.nextKey() {
            path = base + "." + k
            if reader.consumeNull() { continue }
            guard k == "values" else { try reader.skipValue(); continue }
            try forEachElement(expecting: "an array") { (d: inout Self) throws(WireError) in
                if let member = try element(&d) { out.append(member) }
            }
        }
        return out
    }

    mutating func readKeyValue() throws(WireError) -> (String, OTLPJSON.AnyJSON)? {
        if reader.consumeNull() { return nil }
        try expect(.object, "a key/value object")
        let base = path
        try reader.beginObject()
        var key = ""
        var value = OTLPJSON.AnyJSON.empty
        while let k = try reader.nextKey() {
            path = base + "." + k
            if reader.consumeNull() { continue }
            switch k {
            case "key": key = try readString()
            case "value": value = try readAnyValue()
            default: try reader.skipValue()
            }
        }
        return (key, value)
    }

    mutating func readAnyValue() throws(WireError) -> OTLPJSON.AnyJSON {
        try expect(.object, "an AnyValue object")
        let base = path
        try reader.beginObject()
        var value = OTLPJSON.AnyJSON.empty
        while let k = try reader.nextKey() {
            path = base + "." + k
            if reader.consumeNull() { continue }
            switch k {
            case "stringValue", "string_value": value = .value(.string(try readString()))
            case "boolValue", "bool_value":
                guard try reader.peek() == .bool else { throw fail("expected true or false") }
                value = .value(.bool(try reader.readBool()))
            case "intValue", "int_value": value = .value(.int(try readInt64()))
            case "doubleValue", "double_value": value = .value(.double(try readDouble()))
            case "bytesValue", "bytes_value":
                let s = try readString()
                guard let b = Base64.decode(s) else { throw fail("expected base64, got \(quotedForError(s))") }
                value = .value(.bytes(b))
            case "arrayValue", "array_value":
                value = .array(try readValues())
            case "kvlistValue", "kvlist_value":
                value = .kvlist(try readValuesObject { (d: inout Self) throws(WireError) in try d.readKeyValue() })
            default:
                try reader.skipValue()
            }
        }
        return value
    }

    /// `{"values": [AnyValue, ...]}`; a null element is an empty value, so indexes are kept.
    mutating func readValues() throws(WireError) -> [OTLPJSON.AnyJSON] {
        try readValuesObject { (d: inout Self) throws(WireError) in
            d.reader.consumeNull() ? OTLPJSON.AnyJSON.empty : try d.readAnyValue()
        }
    }

    // MARK: Scalars (wrong JSON type: throw with the path)

    mutating func readString() throws(WireError) -> String {
        guard try reader.peek() == .string else { throw fail("expected a string") }
        return try reader.readString()
    }

    mutating func readRawString() throws(WireError) -> ArraySlice<UInt8> {
        guard try reader.peek() == .string else { throw fail("expected a string") }
        return try reader.readRawString()
    }

    /// 64-bit integers: a decimal string (as OTLP specifies) or a JSON number.
    mutating func readUInt64() throws(WireError) -> UInt64 {
        switch try reader.peek() {
        case .number:
            do { return try reader.readUInt64() } catch { throw fail("expected an unsigned 64-bit integer") }
        case .string:
            let raw = try reader.readRawString()
            guard let v = JSONNumbers.uint64(string: raw) else {
                throw fail("expected an unsigned 64-bit integer, got \(quotedForError(raw))")
            }
            return v
        default:
            throw fail("expected an unsigned 64-bit integer")
        }
    }

    mutating func readInt64() throws(WireError) -> Int64 {
        switch try reader.peek() {
        case .number:
            do { return try reader.readInt64() } catch { throw fail("expected a 64-bit integer") }
        case .string:
            let raw = try reader.readRawString()
            guard let v = JSONNumbers.int64(string: raw) else { throw fail("expected a 64-bit integer, got \(quotedForError(raw))") }
            return v
        default:
            throw fail("expected a 64-bit integer")
        }
    }

    mutating func readDouble() throws(WireError) -> Double {
        switch try reader.peek() {
        case .number:
            return try reader.readDouble()
        case .string:
            let s = try reader.readString()
            switch s {
            case "NaN": return .nan
            case "Infinity": return .infinity
            case "-Infinity": return -.infinity
            default:
                guard let d = Double(s) else { throw fail("expected a number, got \(quotedForError(s))") }
                return d
            }
        default:
            throw fail("expected a number")
        }
    }

    /// OTLP requires integer enums; names are accepted too.
    mutating func readEnum<E>(_ fromInt: (Int) -> E, _ fromName: (String) -> E) throws(WireError) -> E {
        switch try reader.peek() {
        case .number:
            let v: Int64
            do { v = try reader.readInt64() } catch { throw fail("expected an enum integer") }
            return fromInt(Int(clamping: v))
        case .string:
            return fromName(try reader.readString())
        default:
            throw fail("expected an enum integer")
        }
    }
}

extension OTLPJSON {
    /// A parsed AnyValue: kvlists are kept until the end so they can be rendered as one JSON string.
    indirect enum AnyJSON {
        case empty
        case value(AttributeValue)
        case array([AnyJSON])
        case kvlist([(String, AnyJSON)])

        var attributeValue: AttributeValue {
            switch self {
            case .empty: return .string("")
            case .value(let v): return v
            case .array(let xs): return .array(xs.map(\.attributeValue))
            case .kvlist:
                var w = JSONWriter()
                write(&w)
                return .string(String(decoding: w.bytes, as: UTF8.self))
            }
        }

        func write(_ w: inout JSONWriter) {
            switch self {
            case .empty: w.appendNull()
            case .value(let v): w.append(attributeValue: v)
            case .array(let xs):
                w.beginArray()
                for x in xs { x.write(&w) }
                w.endArray()
            case .kvlist(let members):
                w.beginObject()
                for (k, v) in members {
                    w.key(k)
                    v.write(&w)
                }
                w.endObject()
            }
        }
    }
}
