import Foundation
import TraceWire
import Yams

/// Writes JSON values as block YAML in kubectl's layout (two-space indent, list items at their
/// key's indent). A string is plain only when YAML 1.1 reads it back as the same string:
/// `"15090"`, `"true"`, `"*"` and `""` are quoted, so what kubectl reads is what was written.
public enum ManifestWriter {
    public static func write(_ documents: [JSONValue]) -> String {
        var out = ""
        for (i, doc) in documents.enumerated() {
            if i > 0 { out += "---\n" }
            write(doc, into: &out)
        }
        return out
    }

    public static func write(_ value: JSONValue, into out: inout String) {
        switch value {
        case .object(let members) where !members.isEmpty:
            writeMembers(members, indent: 0, into: &out)
        case .array(let items) where !items.isEmpty:
            writeItems(items, indent: 0, into: &out)
        default:
            out += inline(value, indent: 0) + "\n"
        }
    }

    private static func writeMembers(_ members: [(key: String, value: JSONValue)], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for (key, value) in members {
            out += pad + scalar(key, indent: indent) + ":"
            writeNested(value, indent: indent, listIndent: indent, into: &out)
        }
    }

    private static func writeItems(_ items: [JSONValue], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for item in items {
            switch item {
            case .object(let members) where !members.isEmpty:
                // `- first: x` then the other keys under it, two spaces in.
                out += pad + "- "
                var first = true
                for (key, value) in members {
                    if !first { out += String(repeating: " ", count: indent + 2) }
                    first = false
                    out += scalar(key, indent: indent + 2) + ":"
                    writeNested(value, indent: indent + 2, listIndent: indent + 2, into: &out)
                }
            case .array(let inner) where !inner.isEmpty:
                out += pad + "-\n"
                writeItems(inner, indent: indent + 2, into: &out)
            default:
                out += pad + "- " + inline(item, indent: indent + 2) + "\n"
            }
        }
    }

    /// The value after `key:`: on the same line when it is a scalar or empty collection,
    /// otherwise on the lines below (a list at the key's own indent, as kubectl writes it).
    private static func writeNested(_ value: JSONValue, indent: Int, listIndent: Int, into out: inout String) {
        switch value {
        case .object(let members) where !members.isEmpty:
            out += "\n"
            writeMembers(members, indent: indent + 2, into: &out)
        case .array(let items) where !items.isEmpty:
            out += "\n"
            writeItems(items, indent: listIndent, into: &out)
        default:
            out += " " + inline(value, indent: indent + 2) + "\n"
        }
    }

    private static func inline(_ value: JSONValue, indent: Int) -> String {
        switch value {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let text): return text
        case .string(let s): return scalar(s, indent: indent)
        case .object: return "{}"
        case .array: return "[]"
        }
    }

    /// A string as plain, literal-block or double-quoted YAML.
    /// Quoting as kubectl (go-yaml) does it: `"15001"`, `"true"` and `""` (text that reads as
    /// another type, or nothing) in double quotes; `'*'` and JSON in single quotes.
    static func scalar(_ s: String, indent: Int) -> String {
        if isSafePlain(s) { return s }
        if s.isEmpty || hasPlainCharacters(s) { return doubleQuoted(s) }
        if let block = literalBlock(s, indent: indent) { return block }
        if let single = singleQuoted(s) { return single }
        return doubleQuoted(s)
    }

    /// Allowed after the first character of a plain scalar in block context (YAML 1.1 §9.1.3),
    /// as go-yaml writes `metadata.labels['app']` and `/ready?full=1` unquoted.
    private static let plainPunctuation: Set<Character> = ["-", "_", ".", "/", ":", "(", ")", "$", "@", "=", "+", ",", "~", "%", "^", " ", "<", ">", ";", "[", "]", "'", "?", "*", "&"]

    static func isSafePlain(_ s: String) -> Bool {
        guard hasPlainCharacters(s) else { return false }
        // Anything YAML 1.1 would read as a bool, number, null, timestamp or merge key stays quoted.
        return Resolver.default.resolveTag(of: Node(s)) == .str
    }

    /// Characters and shape a plain scalar may have, whatever type YAML would read it as.
    private static func hasPlainCharacters(_ s: String) -> Bool {
        guard let first = s.first, let last = s.last else { return false }
        // `-x` is plain (a flag in a command line), `- x` would be a list item.
        let dash = first == "-" && s.count > 1 && s.dropFirst().first != " "
        guard first.isASCII, dash || first.isLetter || first.isNumber || first == "/" || first == "." || first == "_" || first == "$" || first == "(" else { return false }
        guard last != " ", last != ":" else { return false }
        for c in s where !(c.isASCII && (c.isLetter || c.isNumber)) && !plainPunctuation.contains(c) { return false }
        return !s.contains(": ") && !s.contains(" #")
    }

    /// `|`, `|-` or `|+` for text with newlines whose lines read back unchanged.
    private static func literalBlock(_ s: String, indent: Int) -> String? {
        guard s.contains("\n"), !s.contains("\r"), !s.contains("\t") else { return nil }
        guard s.unicodeScalars.allSatisfy({ $0 == "\n" || ($0.value >= 0x20 && $0.value != 0x7F && !(0x80...0x9F).contains($0.value) && $0.value != 0xFEFF) }) else { return nil }
        var lines = s.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // Indentation is taken from the first non-empty line: it must not start with a space.
        guard let firstText = lines.first(where: { !$0.isEmpty }), !firstText.hasPrefix(" ") else { return nil }
        var trailingNewlines = 0
        while lines.count > 1, lines.last == "" {
            lines.removeLast()
            trailingNewlines += 1
        }
        let chomp = trailingNewlines == 0 ? "-" : trailingNewlines == 1 ? "" : "+"
        if trailingNewlines > 1 { lines += Array(repeating: "", count: trailingNewlines - 1) }
        let pad = String(repeating: " ", count: indent)
        return "|" + chomp + lines.map { $0.isEmpty ? "\n" : "\n" + pad + $0 }.joined()
    }

    /// `'{"version":1}'`: no escapes needed for one-line printable text (a `'` is doubled), as
    /// kubectl and Istio write JSON held in annotations.
    private static func singleQuoted(_ s: String) -> String? {
        guard s.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F }), s.first != " ", s.last != " " else { return nil }
        return "'" + s.replacingOccurrences(of: "'", with: "''") + "'"
    }

    /// JSON's escapes are YAML's too; other non-printing characters get `\u` escapes.
    static func doubleQuoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7F || (0x80...0x9F).contains(u.value) || u.value == 0xFEFF || u.value == 0x2028 || u.value == 0x2029 {
                    let hex = String(u.value, radix: 16, uppercase: true)
                    out += "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }
}
