import Testing

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
}
