import Foundation
import MeshtraceTesting
import Testing
import TraceModel

@testable import MeshRunner

@Suite struct MeshFileParserTests {
    let parser = MeshFileParser(fileName: "mesh.yaml")

    @Test func parsesTheAnnotatedExample() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../examples/mesh.yaml")
        let file = try parser.parse(try String(contentsOf: url, encoding: .utf8))
        #expect(file.name == "shop")
        #expect(file.services.map(\.name) == ["frontend", "backend", "database"])
        #expect(file.services[0].upstreams == ["backend"])
        #expect(file.services[1].env == ["LOG_FORMAT": "plain"])
        #expect(file.services[0].args == ["demo-service", "frontend", "--port", "${PORT}"])
        #expect(file.gateway?.port == 8080)
        #expect(file.gateway?.routes.first?.service == "frontend")
        #expect(file.telemetry.samplingPercent == 100)
        #expect(file.telemetry.propagation == [.w3c, .b3multi])
        #expect(file.telemetry.customTags == ["team": "literal:shop"])
        #expect(file.collector.queryPort == 16686)
    }

    /// SkyWalking's header is a format a mesh can ask its sidecars for; an unknown one is named
    /// with the formats there are.
    @Test func propagationTakesSw8() throws {
        let file = try parser.parse("services:\n  - name: web\n    command: x\ntelemetry:\n  propagation: [w3c, sw8]\n")
        #expect(file.telemetry.propagation == [.w3c, .sw8])
        let e = try #require(error("services:\n  - name: web\n    command: x\ntelemetry:\n  propagation: [sw7]\n"))
        #expect(e.field == "telemetry.propagation" && "\(e)".contains("sw8"), "\(e)")
    }

    func error(_ yaml: String) -> MeshFileError? {
        do {
            _ = try parser.parse(yaml)
            return nil
        } catch {
            return error
        }
    }

    @Test func wrongTypeNamesLineAndField() throws {
        let e = try #require(error("""
            services:
              - name: web
                command: ./web
                port: eighty
            """))
        #expect(e.line == 4)
        #expect(e.field == "services[0].port")
        #expect(e.description.contains("mesh.yaml:4:"))
        #expect(e.description.contains("expected a whole number"))
        #expect(e.hint != nil)
    }

    /// `health: tcp` for apps that do not answer HTTP/1 (gRPC servers); anything else must be a path.
    @Test func healthIsAPathOrTCP() throws {
        let file = try parser.parse("services:\n  - name: grpc\n    command: ./grpc\n    health: tcp\n")
        #expect(file.services.first?.healthPath == ServiceSpec.tcpHealth)
        let e = try #require(error("services:\n  - name: web\n    command: ./web\n    health: healthz\n"))
        #expect(e.field == "services[0].health")
        #expect(e.hint?.contains("tcp") == true)
    }

    /// The TCP probe is healthy once something accepts on the port; the HTTP probe needs a 2xx/3xx.
    @Test func theTCPProbeNeedsOnlyAnOpenPort() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(LoopbackAddress.with(port: 0, { bind(listener, $0, $1) }) == 0 && listen(listener, 4) == 0)
        let port = try #require(PortAllocatorTests.localPort(listener))
        #expect(HealthProbe.probe(port: port, path: ServiceSpec.tcpHealth, timeoutMillis: 500))
        #expect(!HealthProbe.probe(port: port, path: "/healthz", timeoutMillis: 200), "nothing answers HTTP there")
        close(listener)  // once: a second close could hit a descriptor another test has reused
        // Not the port just closed: a listener another test starts could be given it at once.
        #expect(!HealthProbe.probe(port: try refusingPort(), path: ServiceSpec.tcpHealth, timeoutMillis: 500), "a refusing port is not healthy")
    }

    @Test func unknownKeySuggestsTheClosestOne() throws {
        let e = try #require(error("""
            services:
              - name: web
                comand: ./web
            """))
        #expect(e.line == 3)
        #expect(e.field == "services[0].comand")
        #expect(e.hint == "did you mean 'command'?")
    }

    @Test func unknownUpstreamAndRouteServicesAreNamed() throws {
        let e = try #require(error("""
            services:
              - name: web
                command: ./web
                upstreams: [api]
            """))
        #expect(e.field == "services[0].upstreams")
        #expect(e.message.contains("'api'"))
        let r = try #require(error("""
            services:
              - name: web
                command: ./web
            gateway:
              routes:
                /: nowhere
            """))
        #expect(r.field == "gateway.routes")
        #expect(r.message.contains("nowhere"))
    }

    /// `replicas: N` runs N processes named NAME-1 … NAME-N, each on a port of its own.
    @Test func replicasNameEachInstance() throws {
        let file = try MeshFileParser(fileName: "mesh.yaml").parse("services:\n  - name: web\n    command: x\n    replicas: 3\n")
        #expect(file.services[0].replicas == 3)
        #expect(file.services[0].instanceNames == ["web-1", "web-2", "web-3"])
        let one = try MeshFileParser(fileName: "mesh.yaml").parse("services:\n  - name: web\n    command: x\n")
        #expect(one.services[0].instanceNames == ["web"])
    }

    @Test func yamlSyntaxErrorsCarryThePosition() throws {
        let e = try #require(error("services:\n  - name: web\n   command: [unclosed\n"))
        #expect(e.line != nil)
        #expect(e.message.hasPrefix("YAML syntax error"))
    }

    @Test(arguments: [
        ("name: x\n", "services"),
        ("services: []\n", "services"),
        ("services:\n  - name: Web\n    command: x\n", "services[0].name"),
        ("services:\n  - name: web\n", "services[0].command"),
        ("services:\n  - name: web\n    command: x\ntelemetry:\n  sampling: 150\n", "telemetry.sampling"),
        ("services:\n  - name: web\n    command: x\ntelemetry:\n  propagation: [w3c, jaeger]\n", "telemetry.propagation"),
        ("services:\n  - name: web\n    command: x\ncollector:\n  url: http://x:1/foo\n", "collector.url"),
        ("services:\n  - name: web\n    command: x\n  - name: web\n    command: y\n", "services[1].name"),
        ("services:\n  - name: web\n    command: x\n    replicas: 3\n    port: 8080\n", "services[0].replicas"),
        ("services:\n  - name: web\n    command: x\n    replicas: 0\n", "services[0].replicas"),
        ("services:\n  - name: web\n    command: x\n    replicas: three\n", "services[0].replicas"),
        ("services:\n  - name: web\n    command: x\n    replicas: 2\n  - name: web-2\n    command: y\n", "services[0].replicas"),
        ("capture: netns\nservices:\n  - name: web\n    command: x\n    replicas: 2\n", "services[0].replicas"),
    ])
    func rejectsInvalidFiles(yaml: String, field: String) throws {
        let e = try #require(error(yaml))
        #expect(e.field == field, "\(e)")
    }

    /// Mutated files: each either parses into a mesh that holds the rules the parser promises, or
    /// is refused with an error that says where (a line inside the file) and what (a field,
    /// unless the YAML itself is broken). Both outcomes must be common, or the mutations test
    /// nothing.
    @Test func fuzzedFilesParseIntoValidMeshesOrNameTheProblem() async {
        var rng = SplitMix64(seed: 20261122)  // fixed seed: a failure reproduces
        let seed = Array("services:\n  - name: web\n    command: ./web\n    port: 8080\n    upstreams: [web]\ntelemetry:\n  sampling: 5\n".utf8)
        let alphabet = Array(":-[]{}#'\" \n\t,&*!|>%@`abc019".utf8)
        var parsed = 0
        var refused = 0
        for _ in 0..<2000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            var bytes = seed
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let i = Int.random(in: 0..<bytes.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: bytes[i] = alphabet.randomElement(using: &rng) ?? 32
                case 1: bytes.insert(alphabet.randomElement(using: &rng) ?? 32, at: i)
                default: bytes.remove(at: i)
                }
                if bytes.isEmpty { bytes = seed }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            do {
                let file = try parser.parse(text)
                parsed += 1
                Self.expectValid(file, text)
            } catch {
                refused += 1
                Self.expectLocated(error, text)
            }
        }
        // Fixed seed: 39 of the 2000 parse today.
        #expect(parsed >= 20 && refused >= 1_000, "parsed \(parsed), refused \(refused)")
    }

    static func expectValid(_ file: MeshFile, _ text: String) {
        let names = file.services.map(\.name)
        #expect(!names.isEmpty, "\(text)")
        #expect(Set(names).count == names.count, "a name twice: \(text)")
        for service in file.services {
            #expect(service.name.range(of: "^[a-z][a-z0-9-]*$", options: .regularExpression) != nil, "\(service.name)")
            #expect(!service.command.isEmpty, "\(text)")
            #expect((0...65535).contains(service.port), "\(text)")
            #expect(service.upstreams.allSatisfy(names.contains), "unknown upstream: \(text)")
            if let health = service.healthPath { #expect(health.hasPrefix("/") || health == ServiceSpec.tcpHealth, "\(text)") }
        }
        #expect((0...100).contains(file.telemetry.samplingPercent), "\(text)")
        #expect((file.gateway?.routes ?? []).allSatisfy { names.contains($0.service) }, "\(text)")
    }

    static func expectLocated(_ error: MeshFileError, _ text: String) {
        #expect(error.file == "mesh.yaml" && !error.message.isEmpty)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).count
        if let line = error.line { #expect((1...lines + 1).contains(line), "line \(line) of \(lines): \(error)") }
        // Only a file that is not YAML at all has no field to name (and a top-level key that is
        // itself empty, which the message quotes).
        let fileLevel = ["YAML syntax error", "YAML error", "the file is empty", "cannot read YAML", "unknown key ''"]
        #expect(!error.field.isEmpty || fileLevel.contains { error.message.hasPrefix($0) }, "no field named: \(error)")
    }
}

