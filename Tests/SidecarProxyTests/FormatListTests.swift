import Testing
import TraceModel

@testable import SidecarProxy

@Suite struct FormatListTests {
    /// The constant table gives what joining the formats in declaration order gives, for every subset.
    @Test func everySubsetMatchesTheJoinedNames() {
        let all = PropagationFormat.allCases
        for mask in 0..<(1 << all.count) {
            let subset = Set(all.enumerated().filter { mask & (1 << $0.offset) != 0 }.map(\.element))
            let joined = subset.isEmpty ? "none" : all.filter { subset.contains($0) }.map(\.rawValue).joined(separator: ",")
            #expect(ProxyHandler.formatList(subset) == joined)
        }
    }
}
