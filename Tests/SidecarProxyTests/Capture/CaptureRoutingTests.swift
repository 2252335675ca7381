import NIOCore
import NIOHTTP1
import Testing

@testable import SidecarProxy

/// Protocol detection, routing by original destination and capture's configuration rules,
/// without sockets. The kernel side is `OriginalDestinationTests` and
/// `tests/interop/test_capture_netns.py`.
@Suite struct CaptureRoutingTests {
    static func sniff(_ pieces: [String]) -> ProtocolSniff.Verdict {
        var sniff = ProtocolSniff()
        var verdict = ProtocolSniff.Verdict.undecided
        for piece in pieces { verdict = sniff.inspect(ByteBuffer(string: piece)) }
        return verdict
    }

    @Test func requestLinesAndThePrefaceAreHTTPEverythingElseIsNot() {
        #expect(Self.sniff(["GET / HTTP/1.1\r\n"]) == .http)
        #expect(Self.sniff(["P", "O", "ST /x HTTP/1.1"]) == .http)
        #expect(Self.sniff(["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]) == .http)
        #expect(Self.sniff(["PRI * HTTP/2.0\r\n", "\r\nSM\r\n\r\n"]) == .http)
        // Undecided while the bytes could still become a method or the preface.
        #expect(Self.sniff(["P"]) == .undecided)
        #expect(Self.sniff(["PRI * HTTP/2.0"]) == .undecided)
        #expect(Self.sniff(["DELE"]) == .undecided)
        // TLS, a database's first bytes, a lower-case method, CONNECT (a proxy of the app's own).
        #expect(Self.sniff(["\u{16}\u{03}\u{01}\u{02}\u{00}"]) == .opaque)
        #expect(Self.sniff(["QUIT\r\n"]) == .opaque)
        #expect(Self.sniff(["get / HTTP/1.1"]) == .opaque)
        #expect(Self.sniff(["CONNECT example.com:443 HTTP/1.1"]) == .opaque)
        #expect(Self.sniff(["GETX"]) == .opaque)
        var silent = ProtocolSniff()
        #expect(silent.silence() == .opaque)
        var decided = ProtocolSniff()
        _ = decided.inspect(ByteBuffer(string: "GET "))
        #expect(decided.silence() == .http)
    }

    static func snapshot(_ change: (inout SidecarConfiguration) -> Void = { _ in }) -> ConfigurationBox.Snapshot {
        var config = SidecarConfiguration()
        config.serviceName = "frontend"
        config.upstreams = [UpstreamService(name: "backend", host: "10.77.0.3", port: 8080)]
        change(&config)
        return ConfigurationBox(config).snapshot
    }

    static func route(_ host: String?, to destination: String, port: Int, uri: String = "/x", snapshot: ConfigurationBox.Snapshot = snapshot()) -> Route {
        Router.capturedRoute(
            direction: .outbound, destination: CapturedDestination(host: destination, port: port), method: .GET, uri: uri, host: host,
            snapshot: snapshot)
    }

    @Test func outboundIsNamedFromHostThenTheRegistryAddressThenTheAddress() {
        // Host names a registry service: its endpoint, its name.
        let byName = Self.route("backend:8080", to: "10.96.0.10", port: 8080)
        #expect(byName.destinationService == "backend" && byName.clusterName == "outbound|8080||backend")
        #expect(byName.outcome == .forward(UpstreamTarget(clusterName: "outbound|8080||backend", host: "10.77.0.3", port: 8080)))
        // Another port of that name: where it was going, under the name.
        let otherPort = Self.route("backend:8081", to: "10.77.0.3", port: 8081)
        #expect(otherPort.outcome == .forward(UpstreamTarget(clusterName: "outbound|8081||backend", host: "10.77.0.3", port: 8081)))
        // Host is an IP: the registry entry at that address names it; it goes where it was going.
        let byAddress = Self.route("10.77.0.3:8080", to: "10.77.0.3", port: 8080)
        #expect(byAddress.destinationService == "backend")
        #expect(byAddress.outcome == .forward(UpstreamTarget(clusterName: "outbound|8080||backend", host: "10.77.0.3", port: 8080)))
        // Another port of the same address is still that service.
        #expect(Self.route(nil, to: "10.77.0.3", port: 9000).destinationService == "backend")
        // A name the registry does not know: that name, passed through to where it was going.
        let unknown = Self.route("example.com", to: "192.0.2.7", port: 80)
        #expect(unknown.destinationService == "example.com" && unknown.clusterName == "PassthroughCluster")
        #expect(unknown.outcome == .forward(UpstreamTarget(clusterName: "PassthroughCluster", host: "192.0.2.7", port: 80)))
        // Nothing but the address.
        #expect(Self.route(nil, to: "192.0.2.7", port: 5432).destinationService == "192.0.2.7:5432")
        #expect(Self.route(nil, to: "fd00::7", port: 5432).destinationService == "[fd00::7]:5432")
        // Registry-only refuses what the registry does not know.
        let strict = Self.snapshot { $0.outboundPolicy = .registryOnly }
        #expect(Self.route("example.com", to: "192.0.2.7", port: 80, snapshot: strict).outcome
            == .reject(status: .badGateway, flag: "NR", reason: "no route to example.com: not in the registry (registry-only)"))
        #expect(Self.route(nil, to: "10.77.0.3", port: 8080, snapshot: strict).destinationService == "backend")
    }

    @Test func inboundGoesToTheAppAtItsOwnAddressFromThePassthroughSource() {
        let v4 = Router.capturedRoute(
            direction: .inbound, destination: CapturedDestination(host: "10.77.0.3", port: 8080), method: .GET, uri: "/x", host: "backend:8080",
            snapshot: Self.snapshot())
        #expect(v4.outcome == .forward(UpstreamTarget(clusterName: "inbound|8080||", host: "10.77.0.3", port: 8080, sourceAddress: "127.0.0.6")))
        #expect(v4.destinationService == "frontend" && v4.path == "/x" && v4.authority == "backend:8080")
        let v6 = Router.capturedHTTP2Route(direction: .inbound, destination: CapturedDestination(host: "fd00::3", port: 50051), snapshot: Self.snapshot())
        #expect(v6.outcome == .forward(UpstreamTarget(clusterName: "inbound|50051||", host: "fd00::3", port: 50051, sourceAddress: "::6")))
    }

    @Test func dualStackPeersAreShownAsIPv4() throws {
        #expect(CapturedDestination.unmappedIPv4("::ffff:10.77.0.2") == "10.77.0.2")
        #expect(CapturedDestination.unmappedIPv4("::ffff:0:1") == nil)
        #expect(CapturedDestination.unmappedIPv4("fd00::2") == nil)
        #expect(UpstreamPool.describe(try SocketAddress(ipAddress: "::ffff:10.77.0.2", port: 80)) == "10.77.0.2:80")
        #expect(UpstreamPool.describe(try SocketAddress(ipAddress: "fd00::2", port: 80)) == "[fd00::2]:80")
    }

    @Test func captureSettingsAreValidated() throws {
        var c = SidecarConfiguration()
        try ConfigurationLoader.apply("capture", "true", to: &c)
        #expect(c.capture.enabled && c.capture.effectiveHealthPort == 15021)
        // The forward-proxy listener gives way to outbound capture on the same port…
        #expect(!c.outboundEnabled)
        try c.validate()
        // …and runs beside it on another.
        try ConfigurationLoader.apply("outbound-port", "15002", to: &c)
        #expect(c.outboundEnabled)
        try c.validate()
        try ConfigurationLoader.apply("metrics-port", "15006", to: &c)
        #expect(throws: ConfigurationError("--inbound-capture-port and --metrics-port are both 15006: each listener needs its own port")) { try c.validate() }
        var off = SidecarConfiguration()
        off.appPort = 8080
        try ConfigurationLoader.apply("inbound-capture-port", "16006", to: &off)
        #expect(throws: ConfigurationError("--inbound-capture-port and --outbound-capture-port need --capture")) { try off.validate() }
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.apply("capture", "maybe", to: &off) }
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.apply("protocol-detection-timeout", "0s", to: &off) }
    }

    @Test func ownPortsAreRefusedOnlyAtLocalAddresses() {
        let guardian = CaptureGuard()
        guardian.setOwnPorts([15001, 15006, 15090])
        #expect(guardian.refusal(CapturedDestination(host: "10.77.0.3", port: 15006), localHost: "10.77.0.3") != nil)
        #expect(guardian.refusal(CapturedDestination(host: "127.0.0.1", port: 15001), localHost: "127.0.0.1") != nil)
        // Another pod's 15006 is that pod's business; our own address on another port is the app's.
        #expect(guardian.refusal(CapturedDestination(host: "192.0.2.9", port: 15006), localHost: "127.0.0.1") == nil)
        #expect(guardian.refusal(CapturedDestination(host: "10.77.0.3", port: 8080), localHost: "10.77.0.3") == nil)
    }
}
