import Testing

@testable import MeshRunner

@Suite struct MeshFileDefaultsTests {
    /// Most apps have no /healthz: without `health:`, an open port is healthy, so `up` does not
    /// wait a minute for a route the app never had.
    @Test func withoutHealthAnOpenPortIsHealthy() throws {
        let file = try MeshFileParser().parse("services:\n  - name: web\n    command: ./web\n  - name: api\n    command: ./api\n    health: /ready\n")
        #expect(file.services.map(\.healthPath) == [ServiceSpec.tcpHealth, "/ready"])
    }
}
