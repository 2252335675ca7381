import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

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

/// A deliberately small HTTP/1.1 GET client for the demo services and the traffic generator.
/// One connection per request (`Connection: close`): simple to reason about, never reuses a
/// half-broken connection, and the sidecar in between pools upstream connections anyway.
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

    /// The parts of an `http://` URL a GET needs.
    struct Target: Sendable, Equatable {
        var host: String
        var port: Int
        /// `host` or `host:port` when the port is not 80: the Host header and absolute form.
        var authority: String
        /// Origin form: path plus query, at least "/".
        var pathAndQuery: String

        init?(url: String) {
            guard let c = URLComponents(string: url), c.scheme?.lowercased() == "http", let host = c.host, !host.isEmpty else { return nil }
            self.host = host
            self.port = c.port ?? 80
            let hostPart = host.contains(":") ? "[\(host)]" : host
            self.authority = c.port.map { $0 == 80 ? hostPart : "\(hostPart):\($0)" } ?? hostPart
            var path = c.percentEncodedPath.isEmpty ? "/" : c.percentEncodedPath
            if let query = c.percentEncodedQuery { path += "?" + query }
            self.pathAndQuery = path
        }
    }

    /// GET `url` with `headers` added (Host, Connection and User-Agent are set here).
    /// Throws `DemoHTTPClientError`; any HTTP status, including 5xx, is a response.
    public func get(_ url: String, headers: [(String, String)] = []) async throws -> DemoHTTPResponse {
        guard let target = Target(url: url) else { throw DemoHTTPClientError.invalidURL(url) }
        let timeout = self.timeout
        return try await withThrowingTaskGroup(of: DemoHTTPResponse.self) { tasks in
            tasks.addTask { try await self.send(target, url: url, headers: headers) }
            tasks.addTask {
                try await Task.sleep(for: timeout)
                throw DemoHTTPClientError.timedOut(url: url, after: timeout)
            }
            defer { tasks.cancelAll() }
            guard let first = try await tasks.next() else { throw DemoHTTPClientError.closedEarly(url: url) }
            return first
        }
    }

    private func send(_ target: Target, url: String, headers: [(String, String)]) async throws -> DemoHTTPResponse {
        let proxy = self.proxy.flatMap { $0.applies(to: target.host) ? $0 : nil }
        let connectHost = proxy?.host ?? target.host
        let connectPort = proxy?.port ?? target.port
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .connect(host: connectHost, port: connectPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            let via = proxy == nil ? "" : " (proxy for \(target.authority))"
            throw DemoHTTPClientError.connectFailed(target: "\(connectHost):\(connectPort)\(via)", reason: "\(error)")
        }
        let limit = maxResponseBytes
        // Through a proxy the request line carries the full URL; directly, only the path.
        let uri = proxy == nil ? target.pathAndQuery : "http://\(target.authority)\(target.pathAndQuery)"
        do {
            return try await channel.executeThenClose { inbound, outbound in
                var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: uri)
                head.headers.add(name: "Host", value: target.authority)
                for (name, value) in headers where !Self.managedHeaders.contains(name.lowercased()) {
                    head.headers.add(name: name, value: value)
                }
                head.headers.add(name: "Connection", value: "close")
                head.headers.add(name: "User-Agent", value: "meshtrace-demo")
                // One write for head and end: a server that answers and closes as soon as it has
                // the head must not turn our (empty) end-of-request write into an error.
                try await outbound.write(contentsOf: [.head(head), .end(nil)])

                var response = DemoHTTPResponse(status: 0, headers: [], body: [])
                for try await part in inbound {
                    switch part {
                    case .head(let head):
                        response.status = Int(head.status.code)
                        response.headers = head.headers.map { ($0.name, $0.value) }
                    case .body(var buffer):
                        guard response.body.count + buffer.readableBytes <= limit else {
                            throw DemoHTTPClientError.responseTooLarge(url: url, limit: limit)
                        }
                        response.body += buffer.readBytes(length: buffer.readableBytes) ?? []
                    case .end:
                        return response
                    }
                }
                throw DemoHTTPClientError.closedEarly(url: url)
            }
        } catch let error as DemoHTTPClientError {
            throw error
        } catch {
            throw DemoHTTPClientError.transport(url: url, reason: "\(error)")
        }
    }

    /// Set by the client itself; callers' copies are ignored rather than duplicated.
    static let managedHeaders: Set<String> = ["host", "connection", "user-agent", "content-length", "transfer-encoding"]
}
