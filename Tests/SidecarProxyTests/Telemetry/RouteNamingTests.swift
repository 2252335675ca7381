import Testing

@testable import SidecarProxy

/// Declared route templates, learned id positions and the cap on distinct span names.
@Suite struct RouteNamingTests {
    @Test func aDeclaredTemplateNamesEveryIdShape() throws {
        let naming = SpanNaming(templates: try RouteTemplates(parsing: ["/api/reports/{id}", "/users/{user}/orders/{order}", "/users/me/orders/{order}"]))
        for id in ["r50", "ord-7f3a", "user_42", "42", "x"] {
            #expect(naming.name(method: "GET", path: "/api/reports/\(id)?full=1") == "GET /api/reports/{id}")
        }
        #expect(naming.route("/users/u7/orders/o9", method: "GET") == "/users/{user}/orders/{order}")
        // More literal segments win, whatever the order given.
        #expect(naming.route("/users/me/orders/o9", method: "GET") == "/users/me/orders/{order}")
        // Not a match: other length, other literal, an empty segment.
        #expect(naming.route("/api/reports", method: "GET") == "/api/reports")
        #expect(naming.route("/api/reports//", method: "GET") == "/api/reports//")
    }

    @Test func badTemplatesAreRefusedNamingTheSegment() {
        #expect(throws: ConfigurationError.self) { try RouteTemplate("api/{id}") }
        #expect(throws: ConfigurationError.self) { try RouteTemplate("/api/r{id}") }
        #expect(throws: ConfigurationError.self) { try RouteTemplate("/api/*") }
    }

    @Test func idsWithLettersAreLearnedWhereAPositionTakesManyValues() {
        let naming = SpanNaming(cardinality: RouteCardinality(maxNames: 500, learnAfter: 10))
        var names = Set<String>()
        for i in 0..<553 { names.insert(naming.name(method: "GET", path: "/api/reports/r\(i)")) }
        // The first ten are kept as they are, then the position is an id.
        #expect(names.count == 11)
        #expect(names.contains("GET /api/reports/{id}"))
        // Two versions are not many values: /api/v1 and /api/v2 stay apart.
        #expect(naming.route("/api/v1/things", method: "GET") == "/api/v1/things")
        #expect(naming.route("/api/v2/things", method: "GET") == "/api/v2/things")
        #expect(naming.cardinality?.snapshot.learned == ["/api/reports/{id}"])
    }

    @Test func pastTheCapNewNamesFoldAndAreCounted() {
        let cardinality = RouteCardinality(maxNames: 5, learnAfter: 1000)
        let naming = SpanNaming(cardinality: cardinality)
        for word in ["a", "b", "c", "d", "e"] { #expect(naming.route("/p/\(word)", method: "GET") == "/p/\(word)") }
        #expect(naming.route("/p/f", method: "GET") == "/p/*")
        #expect(naming.route("/q", method: "POST") == "/*")
        // Names already given out keep their names.
        #expect(naming.route("/p/a", method: "GET") == "/p/a")
        #expect(cardinality.snapshot == RouteCardinality.Snapshot(names: 5, folded: 2, learned: []))
    }

    @Test func maxSpanNamesIsAnOption() throws {
        var config = SidecarConfiguration()
        #expect(config.maxSpanNames == 500)
        try ConfigurationLoader.apply("max-span-names", "0", to: &config)
        #expect(config.maxSpanNames == 0)
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.apply("max-span-names", "many", to: &config) }
        try ConfigurationLoader.apply("route-template", "/a/{id}", to: &config)
        #expect(config.routeTemplates.map(\.description) == ["/a/{id}"])
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.apply("route-template", "a/{id}", to: &config) }
    }

    @Test func withoutCardinalityNamesAreTheHeuristicAlone() {
        let naming = SpanNaming(cardinality: nil)
        for i in 0..<20 { #expect(naming.route("/api/reports/r\(i)", method: "GET") == "/api/reports/r\(i)") }
    }
}
