import Testing

@testable import MeshRunner

/// `up` and `demo` expose OTLP/gRPC beside OTLP/HTTP and tell each app's SDK where it is.
@Suite struct MeshOTLPGRPCTests {
    let parser = MeshFileParser(fileName: "mesh.yaml")
    let services = "services:\n  - name: web\n    command: ./web\n"

    @Test func defaultsTo4317AndFollowsAFreePortRequest() throws {
        #expect(try parser.parse(services).collector.otlpGRPCPort == 4317)
        // A file that asks for free ports gets a free one for gRPC too, not 4317 beside them.
        #expect(try parser.parse(services + "collector:\n  otlpPort: 0\n").collector.otlpGRPCPort == 0)
        #expect(try parser.parse(services + "collector:\n  otlpPort: 0\n  otlpGrpcPort: 4400\n").collector.otlpGRPCPort == 4400)
        #expect(try parser.parse(services + "collector:\n  otlpGrpcPort: -1\n").collector.otlpGRPCPort == -1)
        #expect(throws: MeshFileError.self) { try parser.parse(services + "collector:\n  otlpGrpcPort: 70000\n") }
    }

    @Test func fixedPortsIncludeGRPC() throws {
        let file = try parser.parse(services)
        #expect(file.fixedPorts(controlPort: 0).contains { $0.setting == "collector.otlpGrpcPort" && $0.port == 4317 })
    }
}
