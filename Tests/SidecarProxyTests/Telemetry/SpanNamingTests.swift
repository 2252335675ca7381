import Testing
import TraceModel

@testable import SidecarProxy

@Suite struct SpanNamingTests {
    let naming = SpanNaming()

    @Test(arguments: [
        ("/users/42/orders/7", "/users/{id}/orders/{id}"),
        ("/items/3f2504e0-4f89-11d3-9a0c-0305e82c3301", "/items/{id}"),
        ("/blobs/0123456789abcdef0123", "/blobs/{id}"),
        ("/api/v2/search?q=shoes&page=2", "/api/v2/search"),
        ("/", "/"),
        ("", "/"),
        ("/health", "/health"),
        ("/users/me/settings", "/users/me/settings"),
        ("/tokens/eyJhbGciOiJIUzI1NiJ9x123456", "/tokens/{id}"),
        ("/v1/reports/annual-summary", "/v1/reports/annual-summary"),
    ])
    func templatesIDSegments(path: String, route: String) {
        #expect(naming.route(path) == route)
    }

    @Test func nameIsMethodAndRoute() {
        #expect(naming.name(method: "GET", path: "/users/42") == "GET /users/{id}")
        #expect(SpanNaming(templatePaths: false).name(method: "POST", path: "/users/42?x=1") == "POST /users/42")
    }

    /// The byte-level `route` against the plain Character-level reading of the same rules, over
    /// random paths mixing separators, id-like segments and non-ASCII text. (They differ only for
    /// a combining mark right after a separator, which Character splitting glues to it; bytes are
    /// what a path is, so the byte reading is the right one there.)
    @Test func byteLevelRouteMatchesReference() {
        func reference(_ path: String, template: Bool) -> String {
            var p = Substring(path)
            if let q = p.firstIndex(where: { $0 == "?" || $0 == "#" }) { p = p[..<q] }
            if p.isEmpty { return "/" }
            guard template else { return String(p) }
            return p.split(separator: "/", omittingEmptySubsequences: false)
                .map { SpanNaming.looksLikeID($0) ? "{id}" : String($0) }.joined(separator: "/")
        }
        let pieces = ["/", "/", "?", "#", "42", "users", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "0123456789abcdef0123",
                      "é", "😀", "a b", "%2F", "", "x=1&y=2", "eyJhbGciOiJIUzI1NiJ9x123456"]
        var rng = SplitMix64(seed: 2026)
        for _ in 0..<5_000 {
            let path = (0..<Int(rng.next() % 9)).map { _ in pieces[Int(rng.next() % UInt64(pieces.count))] }.joined()
            for template in [true, false] {
                let naming = SpanNaming(templatePaths: template)
                let expected = reference(path, template: template)
                #expect(naming.route(path) == expected, "\(path)")
                // The span writer's shortcut: the path's own slice whenever no {id} is needed.
                if let plain = naming.untemplatedRoute(path) {
                    #expect(String(plain) == expected, "\(path)")
                } else {
                    #expect(template && expected.contains("{id}"), "\(path)")
                }
            }
        }
    }
}
