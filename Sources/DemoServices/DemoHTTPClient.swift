import Foundation
import NIOCore
import NIOPosix
import TraceExport

/// An HTTP forward proxy to send requests through: the sidecar's outbound listener, found in
/// `HTTP_PROXY`, the way apps in a mesh reach their sidecar without iptables.
public struct HTTPProxy: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    /// `NO_PROXY`: hosts reached directly (exact names, `.suffix` domains, or `*`), as curl and
    /// Python's requests honour it. The mesh runner lists 127.0.0.1 there, so a `<NAME>_URL`
    /// pointing at a local egress listener is not proxied twice.
    public var bypass: [String] = []

    public init(host: String, port: Int, bypass: [String] = []) {
        self.host = host
        self.port = port
        self.bypass = bypass
    }

    /// Whether a request to `host` should go through this proxy.
    public func applies(to host: String) -> Bool {
        let host = host.lowercased()
        for entry in bypass {
            let rule = entry.lowercased()
            if rule == "*" || rule == host { return false }
            let suffix = rule.hasPrefix(".") ? rule : "." + rule
            if host.hasSuffix(suffix) { return false }
        }
        return true
    }

    /// Accepts `http://host:port[/]` or bare `host:port`, as curl and most clients do.
    public init?(_ value: String) {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        let withScheme = trimmed.contains("://") ? trimmed : "http://" + trimmed
        guard let c = URLComponents(string: withScheme), c.scheme == "http", let host = c.host, !host.isEmpty else { return nil }
        self.init(host: host, port: c.port ?? 80)
    }

    /// `HTTP_PROXY`, else `http_proxy` (curl reads only the lower-case one, most others both).
    public static func fromEnvironment(_ environment: [String: String]) -> HTTPProxy? {
        let bypass = (environment["NO_PROXY"] ?? environment["no_proxy"] ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        for name in ["HTTP_PROXY", "http_proxy"] {
            if let value = environment[name], var proxy = HTTPProxy(value) {
                proxy.bypass = bypass
                return proxy
            }
        }
        return nil
    }

    public var description: String { "http://\(host):\(port)" }
}

public struct DemoHTTPResponse: Sendable {
    public var status: Int
    /// In received order; names as sent.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// Why a call failed, worded for the 502 body a demo service returns.
public enum DemoHTTPClientError: Error, CustomStringConvertible, Sendable {
    case invalidURL(String)
    case connectFailed(target: String, reason: String)
    case timedOut(url: String, after: Duration)
    case closedEarly(url: String)
    case responseTooLarge(url: String, limit: Int)
    case transport(url: String, reason: String)

    public var description: String {
        switch self {
        case .invalidURL(let url): return "invalid URL '\(url)' (need http://host[:port]/path)"
        case .connectFailed(let target, let reason): return "cannot connect to \(target): \(reason)"
        case .timedOut(let url, let after): return "GET \(url) timed out after \(after)"
        case .closedEarly(let url): return "GET \(url): connection closed before the response was complete"
        case .responseTooLarge(let url, let limit): return "GET \(url): response larger than \(limit) bytes"
        case .transport(let url, let reason): return "GET \(url) failed: \(reason)"
        }
    }
}

/// The GET client of the demo services and the traffic generator: `OneShotHTTPClient` with
/// `HTTP_PROXY` honoured and errors worded for a 502 body. One connection per request suits
/// the demo too, since the sidecar in between pools upstream connections anyway.
///
/// With a `proxy`, requests go to it in absolute form (`GET http://backend/reports/7`,
/// `Host: backend`), which is what lets the sidecar see, route and trace the call.
public struct DemoHTTPClient: Sendable {
    public var proxy: HTTPProxy?
    public var timeout: Duration
    public var maxResponseBytes: Int
    let group: any EventLoopGroup

    public init(
        proxy: HTTPProxy? = nil, timeout: Duration = .seconds(10), maxResponseBytes: Int = 4 << 20,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.proxy = proxy
        self.timeout = timeout
        self.maxResponseBytes = maxResponseBytes
        self.group = group
    }

    /// GET `url` with `headers` added (Host, Connection and User-Agent are set here).
    /// Throws `DemoHTTPClientError`; any HTTP status, including 5xx, is a response.
    public func get(_ url: String, headers: [(String, String)] = []) async throws -> DemoHTTPResponse {
        guard var endpoint = HTTPEndpoint(url: url) else { throw DemoHTTPClientError.invalidURL(url) }
        endpoint.namesDefaultPort = false
        let proxy = self.proxy.flatMap { $0.applies(to: endpoint.host) ? OneShotHTTPClient.Proxy(host: $0.host, port: $0.port) : nil }
        // A forwarded User-Agent names the caller's client, not this service, so it is replaced.
        let headers = headers.filter { $0.0.lowercased() != "user-agent" } + [("User-Agent", "meshtrace-demo")]
        do {
            let response = try await OneShotHTTPClient.send(
                .GET, to: endpoint, headers: headers, timeout: timeout, bodyLimit: .fail(atMost: maxResponseBytes), via: proxy, group: group)
            return DemoHTTPResponse(status: response.status, headers: response.headers, body: response.body)
        } catch let failure as OneShotHTTPClient.Failure {
            switch failure {
            case .unsupportedURL: throw DemoHTTPClientError.invalidURL(url)
            case .connectFailed(let target, let reason): throw DemoHTTPClientError.connectFailed(target: target, reason: reason)
            case .timedOut: throw DemoHTTPClientError.timedOut(url: url, after: timeout)
            case .closedEarly: throw DemoHTTPClientError.closedEarly(url: url)
            case .bodyTooLarge(let limit): throw DemoHTTPClientError.responseTooLarge(url: url, limit: limit)
            case .transport(let reason): throw DemoHTTPClientError.transport(url: url, reason: reason)
            }
        }
    }
}
