import Yams

/// A problem in the sampling policy file, naming the line, the field and the fix.
public struct PolicyFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var column: Int?
    /// Dotted path, e.g. `policies[2].latency.threshold_ms`.
    public var field: String
    public var message: String
    public var hint: String?

    public var description: String {
        var location = file
        if let line { location += ":\(line)" + (column.map { ":\($0)" } ?? "") }
        var text = "\(location): \(field.isEmpty ? "" : field + ": ")\(message)"
        if let hint { text += "\n  hint: \(hint)" }
        return text
    }
}

/// Typed reads from Yams' node tree, each failing with the node's line and the field's path.
struct PolicyYAMLReader {
    let fileName: String

    func fail(_ node: Node?, _ field: String, _ message: String, hint: String? = nil) -> PolicyFileError {
        PolicyFileError(file: fileName, line: node?.mark?.line, column: node?.mark?.column, field: field, message: message, hint: hint)
    }

    func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "'\(s.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    func mapping(_ node: Node, _ field: String, allowed: [String]) throws(PolicyFileError) -> [(key: String, keyNode: Node, value: Node)] {
        guard let map = node.mapping else { throw fail(node, field, "expected a mapping (key: value), got \(describe(node))") }
        var seen = Set<String>()
        var out: [(key: String, keyNode: Node, value: Node)] = []
        for (k, v) in map {
            guard let key = k.string else { throw fail(k, field, "keys must be plain strings") }
            let path = field.isEmpty ? key : "\(field).\(key)"
            guard allowed.contains(key) else {
                throw fail(k, path, "unknown key '\(key)'", hint: "known keys here: \(allowed.joined(separator: ", "))")
            }
            guard seen.insert(key).inserted else { throw fail(k, path, "'\(key)' is given twice") }
            out.append((key, k, v))
        }
        return out
    }

    func string(_ node: Node, _ field: String) throws(PolicyFileError) -> String {
        guard case .scalar(let s) = node else { throw fail(node, field, "expected a string, got \(describe(node))") }
        return s.string
    }

    func strings(_ node: Node, _ field: String) throws(PolicyFileError) -> [String] {
        guard let seq = node.sequence else { throw fail(node, field, "expected a list, got \(describe(node))") }
        var out: [String] = []
        for (i, item) in seq.enumerated() { out.append(try string(item, "\(field)[\(i)]")) }
        return out
    }

    /// Whole numbers, with YAML 1.1's `_` separators (`100_000`), as the OpenTelemetry examples write them.
    func int(_ node: Node, _ field: String, range: ClosedRange<Int64>) throws(PolicyFileError) -> Int64 {
        guard case .scalar(let s) = node, let value = Int64(s.string.replacingOccurrences(of: "_", with: "")) else {
            throw fail(node, field, "expected a whole number, got \(describe(node))")
        }
        guard range.contains(value) else {
            throw fail(node, field, "must be between \(range.lowerBound) and \(range.upperBound), got \(value)")
        }
        return value
    }

    /// 100 rather than 100.0 in messages, as the user wrote it.
    static func plain(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }

    func double(_ node: Node, _ field: String, range: ClosedRange<Double>) throws(PolicyFileError) -> Double {
        guard case .scalar(let s) = node, let value = Double(s.string.replacingOccurrences(of: "_", with: "")), value.isFinite else {
            throw fail(node, field, "expected a number, got \(describe(node))")
        }
        guard range.contains(value) else {
            throw fail(node, field, "must be between \(Self.plain(range.lowerBound)) and \(Self.plain(range.upperBound)), got \(s.string)")
        }
        return value
    }

    func bool(_ node: Node, _ field: String) throws(PolicyFileError) -> Bool {
        guard case .scalar(let s) = node else { throw fail(node, field, "expected true or false, got \(describe(node))") }
        switch s.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail(node, field, "expected true or false, got '\(s.string)'")
        }
    }

    /// A Go duration (`10s`, `1m30s`, `500ms`), as OpenTelemetry's `decision_wait` is written.
    func duration(_ node: Node, _ field: String, atLeast minimum: Duration) throws(PolicyFileError) -> Duration {
        let text = try string(node, field)
        guard let nanos = GoDuration.parseNanos(text), nanos < UInt64(Int64.max) else {
            throw fail(node, field, "expected a duration like 10s, 500ms or 1m, got '\(text)'")
        }
        let value = Duration.nanoseconds(Int64(nanos))
        guard value >= minimum else { throw fail(node, field, "must be at least \(minimum), got '\(text)'") }
        return value
    }
}
