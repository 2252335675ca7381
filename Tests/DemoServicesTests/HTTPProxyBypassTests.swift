import Testing

@testable import DemoServices

@Suite struct HTTPProxyBypassTests {
    @Test func noProxyListIsHonoured() throws {
        let proxy = try #require(HTTPProxy.fromEnvironment(["HTTP_PROXY": "http://127.0.0.1:15001", "NO_PROXY": "localhost, 127.0.0.1,.internal"]))
        #expect(proxy.applies(to: "backend"))
        #expect(!proxy.applies(to: "127.0.0.1"))
        #expect(!proxy.applies(to: "LOCALHOST"))
        #expect(!proxy.applies(to: "db.internal"))
        #expect(proxy.applies(to: "internal.example"))
        #expect(!(try #require(HTTPProxy.fromEnvironment(["http_proxy": "p:1", "no_proxy": "*"]))).applies(to: "anything"))
    }
}
