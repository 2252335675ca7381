import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing
import TraceModel
@testable import SidecarProxy

struct ConfigurationTests {
    @Test func flagsParse() throws {
        var c = SidecarConfiguration()
        let env = ["TENANT": "acme"]
        for (k, v) in [
            ("service", "frontend"), ("upstream", "backend=127.0.0.1:15006"), ("upstream", "db=[::1]:5432"),
            ("outbound-policy", "REGISTRY_ONLY"), ("sampling", "12.345"), ("propagation", "b3single, w3c"),
            ("custom-tag", "env=literal:prod"), ("custom-tag", "tenant=env:TENANT"), ("custom-tag", "user=header:X-User"),
            ("request-timeout", "250ms"), ("per-try-timeout", "80ms"), ("connect-timeout", "2s"), ("idle-timeout", "1m"), ("gateway-port", "0"),
            ("route", "/api=backend"), ("inbound-port", "off"), ("health-check-path", "/live,/ping"),
            ("export-batch-size", "64"), ("export-flush-interval", "200ms"), ("retry-on-status", "503, 502,503"),
        ] {
            try ConfigurationLoader.apply(k, v, to: &c, environment: env)
        }
        #expect(c.serviceName == "frontend")
        #expect(c.upstreams == [UpstreamService(name: "backend", host: "127.0.0.1", port: 15006), UpstreamService(name: "db", host: "::1", port: 5432)])
        #expect(c.outboundPolicy == .registryOnly)
        #expect(c.samplingPercent == 12.35)
        #expect(c.propagation == [.b3single, .w3c])
        #expect(c.customTags.map(\.source) == [.literal("prod"), .environment(name: "TENANT", value: "acme"), .header("x-user")])
        #expect(c.requestTimeoutMillis == 250 && c.connectTimeoutMillis == 2000 && c.idleTimeoutMillis == 60_000)
        #expect(c.perTryTimeoutMillis == 80)
        #expect(c.inboundPort == -1 && !c.inboundEnabled)
        #expect(c.gatewayEnabled && c.routes == [GatewayRoute(prefix: "/api", service: "backend")])
        #expect(c.healthCheckPaths == ["/live", "/ping"])
        #expect(c.exporter.batchSize == 64 && c.exporter.flushIntervalMillis == 200)
        #expect(c.retryOnStatus == [503, 502])
        try ConfigurationLoader.apply("retry-on-status", "none", to: &c)
        #expect(c.retryOnStatus.isEmpty)
        try c.validate()
    }

    @Test(arguments: [
        ("sampling", "101"), ("sampling", "x"), ("propagation", "jaeger"), ("upstream", "noport"), ("upstream", "a=b:0"),
        ("outbound-policy", "deny"), ("custom-tag", "x=bogus:1"), ("custom-tag", "x"), ("route", "api=backend"),
        ("request-timeout", "soon"), ("per-try-timeout", "-1s"), ("per-try-timeout", "1 s"), ("inbound-port", "70000"), ("log-level", "loud"), ("nope", "1"),
        ("export-batch-size", "0"), ("export-batch-size", "many"), ("export-flush-interval", "0s"),
        ("retry-on-status", "200"), ("retry-on-status", "503,x"),
    ])
    func badFlagsAreRejectedWithAMessage(option: String, value: String) {
        var c = SidecarConfiguration()
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.apply(option, value, to: &c) }
    }

    @Test func exportFormatFollowsTheURLPathUnlessGiven() throws {
        var c = SidecarConfiguration()
        #expect(c.exporter.effectiveKind == "zipkin")
        try ConfigurationLoader.apply("collector", "http://127.0.0.1:4318/v1/traces", to: &c)
        #expect(c.exporter.effectiveKind == "otlp")
        try ConfigurationLoader.apply("collector", "http://127.0.0.1:9411/api/v2/spans", to: &c)
        #expect(c.exporter.effectiveKind == "zipkin")
        try ConfigurationLoader.apply("exporter", "otlp", to: &c)
        #expect(c.exporter.effectiveKind == "otlp", "an explicit --exporter wins over the path")
    }

    @Test func validationCatchesCrossFieldMistakes() throws {
        var c = SidecarConfiguration()
        c.gatewayPort = 0
        #expect(throws: ConfigurationError.self) { try c.validate() }  // gateway without routes
        c.routes = [GatewayRoute(prefix: "/", service: "missing")]
        #expect(throws: ConfigurationError.self) { try c.validate() }  // route to unknown service
        c.upstreams = [UpstreamService(name: "missing", host: "h", port: 1)]
        try c.validate()
        c.customTags = [CustomTag(name: "a", source: .literal("1")), CustomTag(name: "a", source: .literal("2"))]
        #expect(throws: ConfigurationError.self) { try c.validate() }
    }

    @Test func hostsMayBeBracketedIPv6ButNotURLs() throws {
        var c = SidecarConfiguration()
        try ConfigurationLoader.apply("app-host", "[::1]", to: &c)
        #expect(c.appHost == "::1")
        try ConfigurationLoader.apply("host", " [::] ", to: &c)
        #expect(c.bindHost == "::")
        try ConfigurationLoader.apply("app-host", "app.internal", to: &c)
        #expect(c.appHost == "app.internal")
        for bad in ["http://app", "[]", "[::1]:8080x]", "app host", "[::1"] {
            #expect(throws: ConfigurationError.self, "\(bad)") { try ConfigurationLoader.apply("app-host", bad, to: &c) }
        }
    }

    @Test func yamlMirrorsFlags() throws {
        var c = SidecarConfiguration()
        try ConfigurationLoader.applyYAML("""
            service: orders
            app-port: 8080
            inbound_port: 0
            sampling: 5
            propagation: [w3c, b3single]
            upstream:
              - backend=127.0.0.1:15006
            route:
              /api: backend
            custom-tag:
              env: literal:prod
            exporter:
              kind: otlp
              endpoint: http://127.0.0.1:4318
              batch_size: 100
              flush-interval: 2s
            max-retries: 1
            retry-on-status: [502, 503]
            request-timeout: 3s
            per-try-timeout: 500ms
            """, to: &c)
        #expect(c.serviceName == "orders" && c.appPort == 8080 && c.inboundPort == 0)
        #expect(c.samplingPercent == 5 && c.propagation == [.w3c, .b3single])
        #expect(c.upstreams.map(\.name) == ["backend"] && c.routes.map(\.service) == ["backend"])
        #expect(c.customTags.first?.source == .literal("prod"))
        #expect(c.exporter.kind == "otlp" && c.exporter.endpoint == "http://127.0.0.1:4318")
        #expect(c.exporter.batchSize == 100 && c.exporter.flushIntervalMillis == 2000)
        #expect(c.maxRetries == 1 && c.requestTimeoutMillis == 3000 && c.retryOnStatus == [502, 503])
        #expect(c.perTryTimeoutMillis == 500)
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.applyYAML("unknown-key: 1", to: &c) }
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.applyYAML("service: [a, b]", to: &c) }
        #expect(throws: ConfigurationError.self) { try ConfigurationLoader.applyYAML(": : :\n  - [", to: &c) }
    }

    @Test func registryFile() throws {
        var c = SidecarConfiguration()
        try ConfigurationLoader.applyRegistry("backend: 127.0.0.1:15006\nreviews: localhost:9080\n", to: &c)
        #expect(c.upstreams.map(\.name) == ["backend", "reviews"])
        var d = SidecarConfiguration()
        try ConfigurationLoader.applyRegistry("upstreams:\n  backend: 10.0.0.1:80\n", to: &d)
        #expect(d.upstreams == [UpstreamService(name: "backend", host: "10.0.0.1", port: 80)])
    }

    @Test func configBoxSwapsWholeValues() {
        let box = ConfigurationBox(SidecarConfiguration())
        #expect(box.snapshot.sampler.percent == 100)
        box.update { $0.samplingPercent = 1 }
        #expect(box.snapshot.sampler.percent == 1 && box.snapshot.generation == 1)
    }

    @Test func configDumpIsJSONWithEverySection() throws {
        var c = SidecarConfiguration()
        c.serviceName = "svc \"quoted\""
        c.appPort = 8080
        c.upstreams = [UpstreamService(name: "backend", host: "127.0.0.1", port: 1)]
        c.customTags = [CustomTag(name: "t", source: .header("x-t"))]
        var a = BoundAddresses()
        a.inbound = "127.0.0.1:1234"
        let json = ConfigDump.render(c, addresses: a)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        for key in ["service", "listeners", "upstreams", "sampling", "propagation", "exporter", "policies", "custom_tags"] {
            #expect(obj[key] != nil, "\(key)")
        }
        #expect(obj["service"] as? String == "svc \"quoted\"")
        let listeners = try #require(obj["listeners"] as? [[String: Any]])
        #expect(listeners.first?["address"] as? String == "127.0.0.1:1234")
        #expect((obj["policies"] as? [String: Any])?["outbound_policy"] as? String == "allow-any")
    }
}

struct RoutingTests {
    func head(_ uri: String, _ headers: [(String, String)] = [], method: HTTPMethod = .GET) -> HTTPRequestHead {
        HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: HTTPHeaders(headers))
    }

    func snapshot(_ configure: (inout SidecarConfiguration) -> Void) -> ConfigurationBox.Snapshot {
        var c = SidecarConfiguration()
        configure(&c)
        return ConfigurationBox(c).snapshot
    }

    @Test func absoluteFormParsing() throws {
        let t = try #require(RequestTarget.parse(uri: "http://Backend:8080/api?x=1", hostHeader: "ignored"))
        #expect(t.host == "backend" && t.port == 8080 && t.path == "/api?x=1" && t.authority == "Backend:8080")
        #expect(RequestTarget.parse(uri: "http://backend", hostHeader: nil)?.path == "/")
        #expect(RequestTarget.parse(uri: "http://backend?q", hostHeader: nil)?.path == "/?q")
        #expect(RequestTarget.parse(uri: "http://user:pw@backend/x", hostHeader: nil)?.host == "backend")
        #expect(RequestTarget.parse(uri: "http://[::1]:81/", hostHeader: nil)?.host == "::1")
        #expect(RequestTarget.parse(uri: "/rel", hostHeader: "svc:90")?.port == 90)
        #expect(RequestTarget.parse(uri: "/rel", hostHeader: nil) == nil)
        #expect(RequestTarget.parse(uri: "http://backend:99999/", hostHeader: nil) == nil)
        #expect(RequestTarget.parse(uri: "http://:80/", hostHeader: nil) == nil)
    }

    @Test func outboundRoutesByServiceName() {
        let snap = snapshot { $0.upstreams = [UpstreamService(name: "backend", host: "10.0.0.2", port: 15006)] }
        let r = Router.route(direction: .outbound, head: head("http://backend.default.svc.cluster.local:9080/x"), snapshot: snap)
        #expect(r.outcome == .forward(UpstreamTarget(clusterName: "outbound|9080||backend", host: "10.0.0.2", port: 15006)))
        #expect(r.destinationService == "backend" && r.path == "/x")
        let originForm = Router.route(direction: .outbound, head: head("/y", [("host", "backend")]), snapshot: snap)
        #expect(originForm.clusterName == "outbound|80||backend")
    }

    /// CONNECT (HTTPS_PROXY) opens a tunnel from the outbound listener only: to a registered
    /// service by name, elsewhere as the outbound policy says; a target without a port is refused.
    @Test func connectTunnelsRouteByAuthority() {
        let snap = snapshot { $0.upstreams = [UpstreamService(name: "backend", host: "10.0.0.2", port: 15006)] }
        let connect = { (uri: String, direction: ProxyDirection, snap: ConfigurationBox.Snapshot) in
            Router.route(direction: direction, head: self.head(uri, [("host", uri)], method: .CONNECT), snapshot: snap)
        }
        let known = connect("backend.default:443", .outbound, snap)
        #expect(known.outcome == .forward(UpstreamTarget(clusterName: "outbound|443||backend", host: "10.0.0.2", port: 15006)))
        #expect(known.path == "backend.default:443" && known.destinationService == "backend")
        let external = connect("api.example.com:8443", .outbound, snap)
        #expect(external.outcome == .forward(UpstreamTarget(clusterName: "PassthroughCluster", host: "api.example.com", port: 8443)))
        let v6 = connect("[::1]:443", .outbound, snap)
        #expect(v6.outcome == .forward(UpstreamTarget(clusterName: "PassthroughCluster", host: "::1", port: 443)))
        let closed = snapshot { $0.outboundPolicy = .registryOnly }
        #expect(connect("api.example.com:443", .outbound, closed).outcome == .reject(status: .badGateway, flag: "NR", reason: "no route to api.example.com: not in the registry (registry-only)"))
        for bad in ["api.example.com", "/x:443", "http://a:443/", "a:", "a:99999", ":443", "[::1]"] {
            if case .reject(let status, _, let reason) = connect(bad, .outbound, snap).outcome {
                #expect(status == .badRequest, "\(bad)")
                #expect(reason.contains("host:port"), "\(bad): \(reason)")
            } else {
                Issue.record("\(bad) must be refused")
            }
        }
        // An https:// URL sent as a plain proxy request says how to reach it instead.
        if case .reject(let status, _, let reason) = Router.route(direction: .outbound, head: head("https://api.example.com/x"), snapshot: snap).outcome {
            #expect(status == .badRequest && reason.contains("HTTPS_PROXY"), "\(reason)")
        } else {
            Issue.record("https:// through HTTP_PROXY must be refused with a hint")
        }
        for direction in [ProxyDirection.inbound, .gateway] {
            if case .reject(let status, _, _) = connect("backend:443", direction, snap).outcome {
                #expect(status == .methodNotAllowed)
            } else {
                Issue.record("CONNECT on the \(direction) listener must be refused")
            }
        }
    }

    /// Random authority-form targets: a result only for `host:port` (or `[v6]:port`) with a
    /// digits-only port in range, and then exactly the host and port written; never a trap.
    @Test func connectAuthorityParsingOverRandomInput() throws {
        var rng = SplitMix64(seed: 0xC0_4E_C7)
        let alphabet = Array("ab.-Z09:[]/@%+ \t\u{0}é1".unicodeScalars)
        var parsed = 0
        for i in 0..<20_000 {
            var text = String(String.UnicodeScalarView((0..<(rng.next() % 18)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }))
            if i % 3 == 0 { text = "host\(i % 7).example:\(rng.next() % 70_000)" }  // mostly valid, some ports out of range
            guard let target = RequestTarget.parse(connectAuthority: text) else { continue }
            parsed += 1
            #expect((1...65535).contains(target.port), "\(text.debugDescription)")
            // Exactly the host (bracketed when IPv6) and the port's digits.
            let written = text.lowercased()
            let colon = try #require(written.lastIndex(of: ":"))
            let hostPart = target.host.contains(":") ? "[\(target.host)]" : target.host
            let portText = written[written.index(after: colon)...]
            #expect(String(written[..<colon]) == hostPart, "\(text.debugDescription) -> \(target.host)")
            #expect(portText.allSatisfy(\.isASCII) && portText.allSatisfy(\.isNumber) && Int(portText) == target.port, "\(text.debugDescription)")
            #expect(!target.host.isEmpty && !target.host.contains { "/ []\t\u{0}".contains($0) }, "\(text.debugDescription)")
        }
        #expect(parsed > 3_000, "most generated host:port targets parse (\(parsed))")
        #expect(RequestTarget.parse(connectAuthority: "h:+80") == nil)
        #expect(RequestTarget.parse(connectAuthority: "user:pw@h") == nil, "no userinfo, and the port is not the password")
        #expect(RequestTarget.parse(connectAuthority: "h:080")?.port == 80)
    }

    @Test func gatewayLongestPrefixWins() {
        let snap = snapshot { c in
            c.upstreams = [UpstreamService(name: "a", host: "h", port: 1), UpstreamService(name: "b", host: "h", port: 2)]
            c.routes = [GatewayRoute(prefix: "/", service: "a"), GatewayRoute(prefix: "/api/v2", service: "b")]
        }
        #expect(Router.route(direction: .gateway, head: head("/api/v2/x?q"), snapshot: snap).destinationService == "b")
        #expect(Router.route(direction: .gateway, head: head("/api/v1"), snapshot: snap).destinationService == "a")
    }

    @Test func hopByHopStripping() {
        var h = HTTPHeaders([
            ("Connection", "keep-alive, X-Foo, Upgrade"), ("X-Foo", "1"), ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "x"),
            ("TE", "trailers"), ("Trailer", "x"), ("Transfer-Encoding", "chunked"), ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic x"), ("X-Keep", "yes"), ("traceparent", "t"),
        ])
        let chunked = HopByHop.strip(&h)
        #expect(chunked)
        #expect(h.map(\.name) == ["X-Keep", "traceparent"])

        var shouting = HTTPHeaders([("CONNECTION", "close"), ("KEEP-ALIVE", "1"), ("User-Agent", "u"), ("Content-Length", "0")])
        #expect(!HopByHop.strip(&shouting))
        #expect(shouting.map(\.name) == ["User-Agent", "Content-Length"])
    }

    /// In-place stripping against a plain rebuild by the RFC's rule, over random header blocks.
    @Test func hopByHopStrippingMatchesReferenceOnRandomHeaders() {
        let names = ["Connection", "connection", "Keep-Alive", "TE", "Trailer", "Transfer-Encoding", "Upgrade", "X-Foo", "x-bar",
                     "Proxy-Authorization", "proxy-authenticate", "Proxy-Connection", "Content-Length", "Server", "Date"]
        let values = ["close", "keep-alive", "X-Foo", "x-bar, Upgrade", " keep-alive , x-foo ", "chunked", "gzip, chunked", "1", ""]
        var rng = SplitMix64(seed: 31)
        for _ in 0..<3_000 {
            let fields = (0..<Int(rng.next() % 10)).map { _ in (names[Int(rng.next() % UInt64(names.count))], values[Int(rng.next() % UInt64(values.count))]) }
            var listed = Set<String>()
            for (name, value) in fields where name.lowercased() == "connection" {
                for token in value.split(separator: ",") {
                    let t = token.trimmingCharacters(in: .whitespaces).lowercased()
                    if !t.isEmpty && t != "close" && t != "keep-alive" { listed.insert(t) }
                }
            }
            let expected = fields.filter { !HopByHop.fixed.contains($0.0.lowercased()) && !listed.contains($0.0.lowercased()) }
            let expectedChunked = fields.contains { $0.0.lowercased() == "transfer-encoding" && $0.1.lowercased().contains("chunked") }
            var headers = HTTPHeaders(fields)
            let chunked = HopByHop.strip(&headers)
            #expect(headers.map { "\($0.name)=\($0.value)" } == expected.map { "\($0.0)=\($0.1)" }, "\(fields)")
            #expect(chunked == expectedChunked)
        }
    }

    @Test func caseInsensitiveNameComparisonFoldsOnlyASCIILetters() {
        #expect("Transfer-Encoding".equalsLowercaseASCII("transfer-encoding"))
        #expect("HOST".equalsLowercaseASCII("host"))
        #expect(!"hosts".equalsLowercaseASCII("host"))
        #expect(!"Hos\u{7F}".equalsLowercaseASCII("host"))
        #expect(!"connectio\u{C9}".equalsLowercaseASCII("connection"))
        // '@' (0x40) and '[' (0x5B) sit next to the letters; folding them would be a bug.
        #expect(!"@".equalsLowercaseASCII("`"))
        #expect(!"[".equalsLowercaseASCII("{"))
    }

    @Test func requestRules() {
        func check(_ headers: [(String, String)], version: HTTPVersion = .http1_1, uri: String = "/") -> RequestRejection? {
            RequestRules.check(HTTPRequestHead(version: version, method: .POST, uri: uri, headers: HTTPHeaders(headers)), maxHeaderBytes: 1024)
        }
        #expect(check([("host", "a"), ("content-length", "1")]) == nil)
        #expect(check([("host", "a"), ("content-length", "1"), ("transfer-encoding", "chunked")]) != nil)
        #expect(check([("host", "a"), ("content-length", "1"), ("content-length", "1")]) != nil)
        #expect(check([("host", "a"), ("content-length", "1x")]) != nil)
        #expect(check([("host", "a"), ("transfer-encoding", "chunked, gzip")]) != nil)
        #expect(check([("host", "a"), ("transfer-encoding", "chunked")], version: .http1_0) != nil)
        #expect(check([("host", "a"), ("host", "b")]) != nil)
        #expect(check([]) != nil)
        #expect(check([], uri: "http://a/") == nil)
        #expect(check([("host", "a"), ("x", String(repeating: "y", count: 2000))]) == .headersTooLarge)
    }
}

@Suite(.serialized) struct AdminTests {
    let group = MultiThreadedEventLoopGroup.singleton

    @Test func adminAndMetricsEndpoints() async throws {
        let s = try await TestSidecar.start(group: group) { c in
            c.serviceName = "svc"
            c.upstreams = [UpstreamService(name: "backend", host: "127.0.0.1", port: 1)]
        }
        defer { Task { await s.stop() } }
        let admin = try await TestClient(group: group, port: s.adminPort)
        let dump = try await admin.send(.GET, "/config_dump")
        #expect(dump.status == 200)
        #expect(dump.json["service"] as? String == "svc")
        let listeners = dump.json["listeners"] as? [[String: Any]] ?? []
        #expect(listeners.first { $0["name"] as? String == "outbound" }?["address"] as? String == s.addresses.outbound)
        #expect(try await admin.send(.GET, "/ready").text == "LIVE\n")
        #expect(try await admin.send(.GET, "/stats").text.contains("downstream_rq_total: 0"))
        #expect(try await admin.send(.GET, "/nope").status == 404)
        let metrics = try await TestClient(group: group, port: s.metricsPort)
        let prom = try await metrics.send(.GET, "/stats/prometheus")
        #expect(prom.status == 200 && prom.text.contains("meshtrace_sidecar_hops_recorded_total 0"))
        await admin.close()
        await metrics.close()
        #expect(s.addresses.listeningLine(service: "svc").hasPrefix("meshtrace sidecar listening inbound=off outbound=127.0.0.1:"))
    }
}

struct RequestIDTests {
    @Test func fastRequestIDMatchesTraceModelFormat() {
        var a = FastRandom(seed: 42)
        var b = FastRandom(seed: 42)
        for _ in 0..<100 {
            #expect(FastRequestID.generate(using: &a) == RequestID.generate(using: &b))
        }
        var g = FastRandom(seed: 1)
        let id = FastRequestID.generate(using: &g)
        #expect(UUID(uuidString: id) != nil && id.count == 36 && Array(id)[14] == "4")
    }
}
