import Foundation
import TraceWire
import Yams

/// One YAML document of a manifest, as the JSON the API server would see.
public struct ManifestDocument: Sendable {
    /// 1-based position among the file's non-empty documents.
    public var index: Int
    /// Line the document starts on (1-based).
    public var line: Int
    public var value: JSONValue
}

/// Reads multi-document YAML the way kubectl does (sigs.k8s.io/yaml: YAML 1.1 scalars, turned
/// into JSON): `yes`/`on` are booleans, `0755` is octal, timestamps stay strings, and empty
/// documents are skipped. Numbers keep their text so `0.5` and `100m` come out as they went in.
public enum ManifestReader {
    public static func read(_ text: String) throws(ManifestError) -> [ManifestDocument] {
        do {
            return try readAll(text)
        } catch let error as ManifestError {
            throw error
        } catch {
            throw ManifestError(document: 1, field: "", message: "cannot read YAML: \(error)")
        }
    }

    private static func readAll(_ text: String) throws -> [ManifestDocument] {
        var documents: [ManifestDocument] = []
        var seen = 0
        let parser: Parser
        do {
            parser = try Parser(yaml: text, resolver: .default, constructor: .default, encoding: .default)
        } catch let error as YamlError {
            throw syntaxError(error, document: 1)
        }
        while true {
            let root: Node?
            do {
                root = try parser.nextRoot()
            } catch let error as YamlError {
                throw syntaxError(error, document: seen + 1)
            }
            guard let node = root else { break }
            seen += 1
            let line = node.mark?.line ?? 1
            let value: JSONValue
            do {
                value = try convert(node, path: "")
            } catch {
                throw ManifestError(document: seen, line: line, field: error.field, message: error.message)
            }
            if case .null = value { continue }  // `---` with nothing after it
            documents.append(ManifestDocument(index: seen, line: line, value: value))
        }
        return documents
    }

    private static func syntaxError(_ error: YamlError, document: Int) -> ManifestError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ManifestError(document: document, line: mark.line, field: "", message: "YAML syntax error at column \(mark.column): \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ManifestError(document: document, line: context.mark.line, field: "",
                                 message: "key '\(duplicates.joined(separator: "', '"))' appears twice in one mapping")
        default:
            return ManifestError(document: document, field: "", message: "YAML error: \(error)")
        }
    }

    static func convert(_ node: Node, path: String) throws(FieldError) -> JSONValue {
        switch node {
        case .scalar(let scalar):
            return try scalarValue(scalar, tag: node.tag, path: path)
        case .sequence(let sequence):
            var values: [JSONValue] = []
            values.reserveCapacity(sequence.count)
            for (i, item) in sequence.enumerated() { values.append(try convert(item, path: "\(path)[\(i)]")) }
            return .array(values)
        case .mapping(let mapping):
            var members: [(key: String, value: JSONValue)] = []
            for (keyNode, valueNode) in mapping {
                guard case .scalar(let keyScalar) = keyNode else {
                    throw FieldError(path, "a mapping key must be a plain value, not a list or mapping")
                }
                if Tag.Name(rawValue: keyNode.tag.rawValue) == .merge {
                    throw FieldError(path, "YAML merge keys ('<<') are not supported; write the fields out")
                }
                let key = keyScalar.string
                members.append((key, try convert(valueNode, path: FieldPath.join(path, key))))
            }
            return .object(members)
        case .alias:
            // The composer resolves aliases to the anchored node; one left here is undefined.
            throw FieldError(path, "undefined YAML alias")
        }
    }

    private static func scalarValue(_ scalar: Node.Scalar, tag: Tag, path: String) throws(FieldError) -> JSONValue {
        let text = scalar.string
        switch Tag.Name(rawValue: tag.rawValue) {
        case .null: return .null
        case .bool:
            switch text.lowercased() {
            case "yes", "true", "on": return .bool(true)
            default: return .bool(false)
            }
        case .int:
            guard let decimal = YAMLNumbers.decimalInteger(text) else {
                throw FieldError(path, "'\(text)' is not an integer JSON can carry; quote it if it is text")
            }
            return .number(decimal)
        case .float:
            guard let number = YAMLNumbers.jsonFloat(text) else {
                throw FieldError(path, "'\(text)' is not a number JSON can carry (no infinities or NaN); quote it if it is text")
            }
            return .number(number)
        default:
            // str, timestamp (kubectl keeps it as text), binary and anything tagged: text.
            return .string(text)
        }
    }
}

/// Field paths as the API server prints them: `spec.containers[0].name`, and keys that hold
/// dots or slashes in brackets (`metadata.annotations["meshtrace.io/inject"]`).
enum FieldPath {
    static func join(_ path: String, _ key: String) -> String {
        let plain = !key.isEmpty && key.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        if plain { return path.isEmpty ? key : "\(path).\(key)" }
        return "\(path)[\"\(key)\"]"
    }
}

/// YAML 1.1 numbers into JSON's.
enum YAMLNumbers {
    /// `0x1F`, `0o17`, `017` (octal in YAML 1.1), `0b101`, `1_000` and plain decimals, as
    /// decimal text; nil past 64 bits or for base-60 forms.
    static func decimalInteger(_ text: String) -> String? {
        var body = Substring(text.replacingOccurrences(of: "_", with: ""))
        var negative = false
        if body.hasPrefix("+") || body.hasPrefix("-") {
            negative = body.hasPrefix("-")
            body = body.dropFirst()
        }
        guard !body.contains(":") else { return nil }
        let value: UInt64?
        if body.hasPrefix("0x") { value = UInt64(body.dropFirst(2), radix: 16) }
        else if body.hasPrefix("0b") { value = UInt64(body.dropFirst(2), radix: 2) }
        else if body.hasPrefix("0o") { value = UInt64(body.dropFirst(2), radix: 8) }
        else if body.count > 1, body.hasPrefix("0") { value = UInt64(body.dropFirst(), radix: 8) }
        else { value = UInt64(body, radix: 10) }
        guard let value else { return nil }
        if negative {
            guard value <= UInt64(Int64.max) + 1 else { return nil }
            return value == 0 ? "0" : "-\(value)"
        }
        return String(value)
    }

    /// A YAML float as a JSON number: `1.` becomes `1.0`, `.5` `0.5`; infinities and NaN are nil.
    static func jsonFloat(_ text: String) -> String? {
        let cleaned = text.replacingOccurrences(of: "_", with: "")
        guard !cleaned.contains(":"), let double = Double(cleaned), double.isFinite else { return nil }
        var body = cleaned.hasPrefix("+") ? String(cleaned.dropFirst()) : cleaned
        if body.hasPrefix(".") { body = "0" + body }
        if body.hasPrefix("-.") { body = "-0" + body.dropFirst() }
        if body.hasSuffix(".") { body += "0" }
        if let dotE = body.range(of: ".e") ?? body.range(of: ".E") { body.replaceSubrange(dotE, with: ".0e") }
        // What is left must be JSON's grammar; otherwise write the value Swift read.
        return isJSONNumber(body) ? body : String(double)
    }

    static func isJSONNumber(_ text: String) -> Bool {
        (try? JSONParser.parse(Array(text.utf8))).map { if case .number = $0 { return true } else { return false } } ?? false
    }
}
