import TraceModel

/// Small JSON fragments for the query APIs' envelopes (lists of names, errors).
enum JSONString {
    static func quote(_ s: String) -> String { JSONText.quote(s) }

    static func array(_ strings: [String]) -> String {
        "[" + strings.map(JSONText.quote).joined(separator: ",") + "]"
    }
}
