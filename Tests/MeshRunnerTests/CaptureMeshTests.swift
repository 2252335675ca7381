import Testing

@testable import MeshRunner

/// `capture: netns`'s pure parts: the mesh file key, the ports it frees, who the apps run as
/// and the names that let `down` find a crashed run's namespaces. The namespaces themselves are
/// `tests/interop/test_capture_mesh.py`.
@Suite struct CaptureMeshTests {
    static let twoOn8080 = """
        name: shop
        capture: netns
        collector: {queryPort: 0, zipkinPort: 0, otlpPort: 0, adminPort: 0}
        services:
          - name: a
            command: /bin/true
            port: 47913
          - name: b
            command: /bin/true
            port: 47913
        """

    @Test func captureNetnsIsParsedAndAppsMayShareAPort() throws {
        let file = try MeshFileParser(fileName: "mesh.yaml").parse(Self.twoOn8080)
        #expect(file.capture == .netns)
        // Each app has a namespace of its own: the preflight does not count their ports.
        #expect(file.fixedPorts(controlPort: 0).isEmpty)
        let off = try MeshFileParser(fileName: "mesh.yaml").parse(Self.twoOn8080.replacingOccurrences(of: "capture: netns", with: "capture: off"))
        #expect(off.capture == .off)
        let twice = #expect(throws: MeshStartError.self) { try PortPreflight.check(off.fixedPorts(controlPort: 0)) }
        #expect(twice?.description.contains("port 47913 is given twice") == true, "\(String(describing: twice))")
    }

    @Test func aWrongValueNamesTheKeyAndTheChoices() {
        let error = #expect(throws: MeshFileError.self) {
            try MeshFileParser(fileName: "mesh.yaml").parse(Self.twoOn8080.replacingOccurrences(of: "capture: netns", with: "capture: iptables"))
        }
        #expect(error?.description.contains("mesh.yaml:2:10: capture: expected netns or off, got 'iptables'") == true, "\(String(describing: error))")
    }

    @Test func appsRunAsTheSudoUserElseNobody() {
        #expect(AppIdentity.resolve(environment: ["SUDO_UID": "1000", "SUDO_GID": "1001"]) == AppIdentity(uid: 1000, gid: 1001))
        #expect(AppIdentity.resolve(environment: ["SUDO_UID": "0"]) == AppIdentity(uid: 65534, gid: 65534))
        #expect(AppIdentity.resolve(environment: [:]) == AppIdentity(uid: 65534, gid: 65534))
    }

    @Test func namespaceNamesCarryTheMeshAndThePid() {
        #expect(PodNetwork.namespacePrefix(mesh: "demo-broken") == "meshtrace-demo_broken-")
        #expect(CaptureSupport.meshName(of: "meshtrace-demo_broken-backend-4242") == "demo_broken")
        #expect(PodNetwork.safe("Front.End") == "front_end")
    }
}
