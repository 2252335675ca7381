/// `string_attribute`'s test: exact values, or, with `enabled_regex_matching`, regular
/// expressions that match anywhere in the value (Go's `regexp.MatchString`; write `^…$` to
/// match the whole value). Swift's regex syntax is close to Go's RE2 for the classes,
/// alternations and anchors such policies use.
struct StringMatcher: Sendable {
    private let exact: Set<String>
    private let patterns: [CompiledPattern]

    /// Regex values are not `Sendable`; each is built once and only read after.
    private final class CompiledPattern: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>
        init(_ regex: Regex<AnyRegexOutput>) { self.regex = regex }
    }

    init(values: [String], regex: Bool, policy: String) throws(PolicyError) {
        if regex {
            var compiled: [CompiledPattern] = []
            for value in values {
                do {
                    compiled.append(CompiledPattern(try Regex(value)))
                } catch {
                    throw PolicyError(policy: policy, message: "'\(value)' is not a regular expression: \(error)")
                }
            }
            patterns = compiled
            exact = []
        } else {
            patterns = []
            exact = Set(values.filter { !$0.isEmpty })
        }
    }

    func matches(_ text: String) -> Bool {
        if patterns.isEmpty { return exact.contains(text) }
        return patterns.contains { (try? $0.regex.firstMatch(in: text)) != nil }
    }
}
