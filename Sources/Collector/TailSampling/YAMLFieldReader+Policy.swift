import ConfigYAML
import Yams

/// A problem in the sampling policy file, naming the line, the field and the fix (the type is
/// shared with mesh.yaml's reader).
public typealias PolicyFileError = ConfigFileError

/// The policy file's reader: `YAMLFieldReader`'s shared reads, and the number, duration and list
/// syntax of the OpenTelemetry tail sampler's configuration.
typealias PolicyYAMLReader = YAMLFieldReader

extension YAMLFieldReader {
    func mapping(_ node: Node, _ field: String, allowed: [String]) throws(PolicyFileError) -> [(key: String, keyNode: Node, value: Node)] {
        try mapping(node, field, allowed: Set(allowed))
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
