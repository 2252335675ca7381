import TraceWire

/// Small edits on Kubernetes objects held as ordered JSON: a key that exists keeps its place,
/// a new one goes last, so injected output diffs cleanly against its input.
extension JSONValue {
    static func object(_ pairs: KeyValuePairs<String, JSONValue>) -> JSONValue {
        .object(pairs.map { (key: $0.key, value: $0.value) })
    }

    static func int(_ value: Int) -> JSONValue { .number(String(value)) }

    static func strings(_ values: [String]) -> JSONValue { .array(values.map { .string($0) }) }

    var members: [(key: String, value: JSONValue)]? {
        if case .object(let m) = self { return m } else { return nil }
    }

    var isObject: Bool { members != nil }

    /// Sets `key`, in place when present, else appended. A non-object becomes an object.
    mutating func set(_ key: String, _ value: JSONValue) {
        var list = members ?? []
        if let i = list.firstIndex(where: { $0.key == key }) { list[i].value = value } else { list.append((key, value)) }
        self = .object(list)
    }

    mutating func remove(_ key: String) {
        guard var list = members else { return }
        list.removeAll { $0.key == key }
        self = .object(list)
    }

    /// Applies `edit` to the object at `key` (created empty when absent).
    mutating func update(_ key: String, _ edit: (inout JSONValue) throws(FieldError) -> Void) throws(FieldError) {
        var child = self[key] ?? .object([])
        if child.isNull { child = .object([]) }
        try edit(&child)
        set(key, child)
    }

    var intValue: Int? {
        guard case .number(let t) = self else { return nil }
        return Int(t)
    }
}

/// Typed reads that name the field when the type is wrong.
enum Field {
    static func object(_ value: JSONValue?, _ path: String, required: Bool = false) throws(FieldError) -> JSONValue? {
        guard let value, !value.isNull else {
            if required { throw FieldError(path, "required, missing") }
            return nil
        }
        guard value.isObject else { throw FieldError(path, "expected a mapping, got \(describe(value))") }
        return value
    }

    static func array(_ value: JSONValue?, _ path: String) throws(FieldError) -> [JSONValue] {
        guard let value, !value.isNull else { return [] }
        guard case .array(let items) = value else { throw FieldError(path, "expected a list, got \(describe(value))") }
        return items
    }

    static func string(_ value: JSONValue?, _ path: String) throws(FieldError) -> String? {
        guard let value, !value.isNull else { return nil }
        guard case .string(let s) = value else { throw FieldError(path, "expected a string, got \(describe(value))") }
        return s
    }

    /// String-valued maps (labels, annotations): every value must be a string, as the API requires.
    static func stringMap(_ value: JSONValue?, _ path: String) throws(FieldError) -> [(key: String, value: String)] {
        guard let object = try Field.object(value, path), let members = object.members else { return [] }
        var out: [(key: String, value: String)] = []
        for (k, v) in members {
            guard case .string(let s) = v else {
                throw FieldError(FieldPath.join(path, k), "expected a string, got \(describe(v)); quote it (\"...\")")
            }
            out.append((k, s))
        }
        return out
    }

    static func describe(_ value: JSONValue) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return "the boolean \(b)"
        case .number(let n): return "the number \(n)"
        case .string(let s): return "the string '\(s.prefix(60))'"
        case .array: return "a list"
        case .object: return "a mapping"
        }
    }
}
