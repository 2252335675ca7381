import Yams

/// Typed reads from Yams' node tree, each failing with the node's line and column and the
/// field's dotted path. Read through the node tree rather than Codable so that every error can
/// name the exact line and field: the thing people need when a config file is wrong.
/// What differs between files (number syntax, lists given as a comma string) stays with each
/// file's parser.
public struct YAMLFieldReader: Sendable {
    public let fileName: String

    public init(fileName: String) { self.fileName = fileName }

    public func fail(_ node: Node?, _ field: String, _ message: String, hint: String? = nil) -> ConfigFileError {
        ConfigFileError(file: fileName, line: node?.mark?.line, column: node?.mark?.column, field: field, message: message, hint: hint)
    }

    public func describe(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "'\(s.string)'"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    /// The mapping's entries in file order. An unknown key fails with the nearest known key
    /// (`did you mean 'command'?`) or the list of known keys; a repeated key fails too.
    public func mapping(_ node: Node, _ field: String, allowed: Set<String>) throws(ConfigFileError) -> [(key: String, keyNode: Node, value: Node)] {
        guard let map = node.mapping else {
            throw fail(node, field, "expected a mapping (key: value lines), got \(describe(node))")
        }
        var seen = Set<String>()
        var out: [(key: String, keyNode: Node, value: Node)] = []
        for (k, v) in map {
            guard let key = k.string else { throw fail(k, field, "keys must be plain strings") }
            let path = field.isEmpty ? key : "\(field).\(key)"
            guard allowed.contains(key) else {
                let close = allowed.min { editDistance($0, key) < editDistance($1, key) }
                let hint = close.flatMap { editDistance($0, key) <= 3 ? "did you mean '\($0)'?" : nil }
                    ?? "known keys here: \(allowed.sorted().joined(separator: ", "))"
                throw fail(k, path, "unknown key '\(key)'", hint: hint)
            }
            guard seen.insert(key).inserted else { throw fail(k, path, "'\(key)' is given twice") }
            out.append((key, k, v))
        }
        return out
    }

    public func string(_ node: Node, _ field: String) throws(ConfigFileError) -> String {
        guard case .scalar(let s) = node else { throw fail(node, field, "expected a string, got \(describe(node))") }
        return s.string
    }

    /// YAML 1.1's spellings: true/yes/on and false/no/off, any case.
    public func bool(_ node: Node, _ field: String) throws(ConfigFileError) -> Bool {
        guard case .scalar(let s) = node else { throw fail(node, field, "expected true or false, got \(describe(node))") }
        switch s.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw fail(node, field, "expected true or false, got '\(s.string)'")
        }
    }
}

/// Levenshtein distance, for "did you mean" hints.
public func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
