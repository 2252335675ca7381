/// W3C `tracestate` (Trace Context §3.3): a list of up to 32 `key=value` members, possibly
/// spread over several header fields (combined with commas first), with optional whitespace
/// around members and empty members allowed. A list that breaks any rule (a bad key or value, a
/// key given twice, more than 32 members) is discarded whole: the spec lets a vendor drop a
/// `tracestate` it cannot parse, and passing on part of one would pass on a guess.
public enum W3CTraceState {
    public static let maxMembers = 32
    /// What is passed on at most ("vendors SHOULD propagate at least 512 characters").
    public static let maxLength = 512
    /// Members this long go first when the list must be cut (§3.3.1.5).
    public static let longMember = 128

    /// The list as it is passed on: its members in order, joined by bare commas (optional
    /// whitespace and empty members left out, which the spec allows), cut to `maxLength` by
    /// whole members as §3.3.1.5 says. Nil when the list is invalid or has no member.
    public static func normalized(_ combined: String) -> String? {
        var members: [Substring] = []
        var keys: [Substring] = []
        for raw in combined.split(separator: ",", omittingEmptySubsequences: false) {
            let member = trimmingOWS(raw)
            if member.isEmpty { continue }
            guard members.count < maxMembers, let eq = member.firstIndex(of: "=") else { return nil }
            let key = member[..<eq]
            let value = member[member.index(after: eq)...]
            guard isValidKey(key), isValidValue(value), !keys.contains(key) else { return nil }
            keys.append(key)
            members.append(member)
        }
        guard !members.isEmpty else { return nil }
        var total = members.reduce(0) { $0 + $1.utf8.count } + members.count - 1
        if total > maxLength {
            // Entries over 128 characters first, then from the end.
            while total > maxLength, let long = members.lastIndex(where: { $0.utf8.count > longMember }) {
                total -= members[long].utf8.count + (members.count > 1 ? 1 : 0)
                members.remove(at: long)
            }
            while total > maxLength, let last = members.last {
                total -= last.utf8.count + (members.count > 1 ? 1 : 0)
                members.removeLast()
            }
            if members.isEmpty { return nil }
        }
        // Nothing left out (no whitespace, empty member or cut): the field as it came, no copy.
        if total == combined.utf8.count { return combined }
        return members.joined(separator: ",")
    }

    /// `simple-key / multi-tenant-key`:
    /// `simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )`,
    /// `multi-tenant-key = tenant-id "@" system-id`, the tenant up to 241 characters starting
    /// with a letter or digit, the system up to 14 starting with a letter.
    public static func isValidKey(_ key: Substring) -> Bool {
        let utf8 = key.utf8
        guard let at = utf8.firstIndex(of: UInt8(ascii: "@")) else {
            return component(utf8[...], maxLength: 256, digitFirst: false)
        }
        let tenant = utf8[utf8.startIndex..<at]
        let system = utf8[utf8.index(after: at)...]
        return component(tenant, maxLength: 241, digitFirst: true) && component(system, maxLength: 14, digitFirst: false)
    }

    private static func component(_ bytes: Substring.UTF8View.SubSequence, maxLength: Int, digitFirst: Bool) -> Bool {
        guard let first = bytes.first, bytes.count <= maxLength else { return false }
        let isLower = { (c: UInt8) in c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z") }
        let isDigit = { (c: UInt8) in c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
        guard isLower(first) || (digitFirst && isDigit(first)) else { return false }
        return bytes.dropFirst().allSatisfy { c in
            isLower(c) || isDigit(c) || c == UInt8(ascii: "_") || c == UInt8(ascii: "-") || c == UInt8(ascii: "*") || c == UInt8(ascii: "/")
        }
    }

    /// `value = 0*255(chr) nblk-chr`: 1 to 256 printable ASCII characters but `,` and `=`,
    /// not ending in a space (leading spaces belong to the value).
    public static func isValidValue(_ value: Substring) -> Bool {
        let utf8 = value.utf8
        guard let last = utf8.last, utf8.count <= 256, last != 0x20 else { return false }
        return utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E && $0 != UInt8(ascii: ",") && $0 != UInt8(ascii: "=") }
    }

    /// Without the spaces and tabs around it (OWS).
    static func trimmingOWS(_ s: Substring) -> Substring {
        var s = s
        while let f = s.utf8.first, f == 0x20 || f == 0x09 { s = s.dropFirst() }
        while let l = s.utf8.last, l == 0x20 || l == 0x09 { s = s.dropLast() }
        return s
    }
}
