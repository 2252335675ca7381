import Testing
@testable import SidecarProxy

/// `--upstream NAME=HOST:PORT,HOST:PORT,…` and its YAML forms.
struct UpstreamListTests {
    @Test func aListGivesOneServiceWithSeveralEndpoints() throws {
        let u = try UpstreamService.parse("backend=127.0.0.1:9001, 127.0.0.1:9002,[::1]:9003")
        #expect(u.name == "backend")
        #expect(u.endpoints.map(\.address) == ["127.0.0.1:9001", "127.0.0.1:9002", "[::1]:9003"])
        #expect(u.host == "127.0.0.1" && u.port == 9001)
        let single = try UpstreamService.parse("db=10.0.0.1:5432")
        #expect(single.endpoints.count == 1)
    }

    @Test func malformedListsAreRefusedNamingTheEndpoint() {
        for (text, needle) in [
            ("backend=127.0.0.1:9001,", "endpoint 2 of 2 is empty"), ("backend=,127.0.0.1:1", "endpoint 1 of 2 is empty"),
            ("backend=127.0.0.1:9001,nohost", "upstream 'backend' endpoint 2"), ("backend=h:1,h:99999", "endpoint 2: bad port"),
            ("backend=h:1,h:1", "listed twice"),
        ] {
            do {
                _ = try UpstreamService.parse(text)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.description.contains(needle), "\(text): \(error.description)")
            }
        }
    }

    @Test func yamlTakesAListOrACommaStringAndTheBalancingKeys() throws {
        var c = SidecarConfiguration()
        try ConfigurationLoader.applyYAML("""
            upstream:
              backend: [127.0.0.1:9001, 127.0.0.1:9002]
              reviews: 127.0.0.1:9101,127.0.0.1:9102
            lb_policy: round-robin
            outlier_consecutive_5xx: 3
            outlier_base_ejection_time: 5s
            outlier_max_ejection_percent: 50
            """, to: &c)
        #expect(c.upstream(named: "backend")?.endpoints.count == 2)
        #expect(c.upstream(named: "reviews")?.endpoints.map(\.port) == [9101, 9102])
        #expect(c.loadBalancer == .roundRobin)
        #expect(c.outlierDetection.consecutive5xx == 3 && c.outlierDetection.baseEjectionMillis == 5000)
        #expect(c.outlierDetection.maxEjectionPercent == 50)
        var d = SidecarConfiguration()
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.apply("lb-policy", "random", to: &d) }
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.apply("outlier-max-ejection-percent", "101", to: &d) }
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.apply("outlier-consecutive-5xx", "-1", to: &d) }
    }
}
