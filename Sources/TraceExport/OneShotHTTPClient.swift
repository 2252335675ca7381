import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// host, port and request target of an http:// URL.
public struct HTTPEndpoint: Sendable, Hashable {
    /// Without brackets, as the resolver wants it (`::1`, not `[::1]`).
    public var host: String
    public var port: Int
    /// Origin form: path plus query, at least "/".
    public var path: String
    /// Whether `authority` keeps ":80". The demo services clear it so the sidecar, which routes
    /// and names spans by the Host it is given, sees `backend` as curl or Python would send it,
    /// not `backend:80`.
    public var namesDefaultPort = true

    /// Nil unless `url` is an `http://` URL with a host: https and other schemes need a client
    /// that links TLS, which is exactly what this one exists to avoid.
    public init?(url: String) {
        guard let components = URLComponents(string: url), components.scheme?.lowercased() == "http",
              let rawHost = components.host, !rawHost.isEmpty
        else { return nil }
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = components.port ?? 80
        var path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
        if let query = components.percentEncodedQuery { path += "?" + query }
        self.path = path
    }

    /// The Host header, and the absolute URL a proxy gets: IPv6 literals need their brackets back.
    var authority: String {
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return port == 80 && !namesDefaultPort ? hostPart : "\(hostPart):\(port)"
    }
}

/// A small HTTP/1.1 client over SwiftNIO, so the `meshtrace` binary needs no
/// FoundationNetworking: URLSession on Linux pulls libcurl and its TLS stack into every
/// process, sidecars included, for a few loopback calls.
///
/// One request per connection (`Connection: close`): callers make a few requests a second at
/// most, so pooling buys nothing, and a fresh connection never inherits a half-broken one.
/// Any HTTP status, 5xx included, is a response; only transport problems throw, as
/// `OneShotHTTPClient.Failure`.
public enum OneShotHTTPClient {
    public enum Method: String, Sendable, Hashable {
        case GET, POST, PUT, DELETE
    }

    /// An HTTP forward proxy (the sidecar's outbound listener, say) to connect to instead of the
    /// endpoint. The request line then carries the absolute URL, since the proxy has no other
    /// way to learn where the request is going; Host stays the endpoint's.
    public struct Proxy: Sendable, Hashable {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    public struct Response: Sendable {
        public var status: Int
        /// In received order; names as sent.
        public var headers: [(name: String, value: String)]
        public var body: [UInt8]
        /// The body went past `BodyLimit.truncate`'s size and only its start was kept.
        public var bodyTruncated: Bool

        public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = [], bodyTruncated: Bool = false) {
            self.status = status
            self.headers = headers
            self.body = body
            self.bodyTruncated = bodyTruncated
        }

        /// The first value of `name`, compared case-insensitively as HTTP requires.
        public func header(_ name: String) -> String? {
            let wanted = name.lowercased()
            return headers.first { $0.name.lowercased() == wanted }?.value
        }

        /// Delay-seconds only; an HTTP-date, a negative number or garbage is nil, so callers
        /// fall back to their own backoff instead of trusting it.
        public var retryAfterSeconds: Double? {
            header("retry-after").flatMap(Double.init).flatMap { $0.isFinite && $0 >= 0 ? $0 : nil }
        }
    }

    /// What to do with a body larger than the caller is willing to hold.
    public enum BodyLimit: Sendable, Hashable {
        /// Throw `Failure.bodyTooLarge`: the caller needs the whole body or nothing.
        case fail(atMost: Int)
        /// Keep the first `bytes`, read and drop the rest, and set `bodyTruncated`.
        case truncate(keeping: Int)

        /// A bound on what a buggy or hostile server can make a CLI command hold in memory,
        /// far above any answer our own control plane or collector sends.
        public static let standard = BodyLimit.fail(atMost: 64 << 20)
    }

    public enum Failure: Error, CustomStringConvertible, LocalizedError, Sendable, Equatable {
        case unsupportedURL(String)
        case connectFailed(target: String, reason: String)
        case timedOut(after: Duration)
        case closedEarly
        case bodyTooLarge(limit: Int)
        case transport(reason: String)

        public var description: String {
            switch self {
            case .unsupportedURL(let url): return "unsupported URL '\(url)' (only http://host[:port]/path is supported)"
            case .connectFailed(let target, let reason): return "cannot connect to \(target): \(reason)"
            case .timedOut(let after): return "no complete response within \(Self.seconds(after))"
            case .closedEarly: return "the connection closed before the response was complete"
            case .bodyTooLarge(let limit): return "the response body is larger than \(limit) bytes"
            case .transport(let reason): return reason
            }
        }

        // The CLI prints `localizedDescription`; without this Foundation would show the
        // type name and a case number instead of the message.
        public var errorDescription: String? { description }

        static func seconds(_ duration: Duration) -> String {
            let (whole, attoseconds) = duration.components
            return attoseconds == 0 ? "\(whole) s" : String(format: "%.3g s", Double(whole) + Double(attoseconds) / 1e18)
        }
    }

    /// Sends one request to `url`; throws `Failure.unsupportedURL` unless it is an http:// URL.
    public static func send(
        _ method: Method, url: String, body: [UInt8]? = nil, contentType: String? = nil, headers: [(String, String)] = [],
        timeout: Duration, bodyLimit: BodyLimit = .standard, via proxy: Proxy? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Response {
        guard let endpoint = HTTPEndpoint(url: url) else { throw Failure.unsupportedURL(url) }
        return try await send(
            method, to: endpoint, body: body, contentType: contentType, headers: headers,
            timeout: timeout, bodyLimit: bodyLimit, via: proxy, group: group)
    }

    /// Sends one request; `timeout` bounds all of it, connecting included.
    public static func send(
        _ method: Method, to endpoint: HTTPEndpoint, body: [UInt8]? = nil, contentType: String? = nil, headers: [(String, String)] = [],
        timeout: Duration, bodyLimit: BodyLimit = .standard, via proxy: Proxy? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> Response {
        let head = requestHead(method, endpoint, body: body, contentType: contentType, headers: headers, absoluteForm: proxy != nil)
        return try await withThrowingTaskGroup(of: Response.self) { tasks in
            tasks.addTask {
                try await exchange(
                    endpoint, via: proxy, head: head, body: body, bodyLimit: bodyLimit, connectTimeout: min(timeout, .seconds(5)), group: group)
            }
            tasks.addTask {
                try await Task.sleep(for: timeout)
                throw Failure.timedOut(after: timeout)
            }
            defer { tasks.cancelAll() }
            guard let first = try await tasks.next() else { throw Failure.timedOut(after: timeout) }
            return first
        }
    }

    /// Set here from the request itself; callers' copies are dropped rather than duplicated,
    /// since two Content-Length values make a server refuse the request.
    static let managedHeaders: Set<String> = ["host", "connection", "content-length", "transfer-encoding"]

    static func requestHead(
        _ method: Method, _ endpoint: HTTPEndpoint, body: [UInt8]?, contentType: String?, headers: [(String, String)],
        absoluteForm: Bool
    ) -> HTTPRequestHead {
        let uri = absoluteForm ? "http://\(endpoint.authority)\(endpoint.path)" : endpoint.path
        var head = HTTPRequestHead(version: .http1_1, method: HTTPMethod(rawValue: method.rawValue), uri: uri)
        head.headers.add(name: "Host", value: endpoint.authority)
        var managed = managedHeaders
        if let contentType {
            head.headers.add(name: "Content-Type", value: contentType)
            managed.insert("content-type")
        }
        // A POST or PUT without a body still says so: some servers wait for a length otherwise.
        if let body {
            head.headers.add(name: "Content-Length", value: String(body.count))
        } else if method == .POST || method == .PUT {
            head.headers.add(name: "Content-Length", value: "0")
        }
        head.headers.add(name: "Connection", value: "close")
        for (name, value) in headers where !managed.contains(name.lowercased()) {
            head.headers.add(name: name, value: value)
        }
        if !head.headers.contains(name: "User-Agent") { head.headers.add(name: "User-Agent", value: "meshtrace") }
        return head
    }

    private static func exchange(
        _ endpoint: HTTPEndpoint, via proxy: Proxy?, head: HTTPRequestHead, body: [UInt8]?, bodyLimit: BodyLimit,
        connectTimeout: Duration, group: any EventLoopGroup
    ) async throws -> Response {
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                .connectTimeout(TimeAmount(connectTimeout))
                .connect(host: proxy?.host ?? endpoint.host, port: proxy?.port ?? endpoint.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            // A refused proxy would otherwise read as the endpoint being down.
            let target = proxy.map { "\($0.host):\($0.port) (proxy for \(endpoint.authority))" } ?? endpoint.authority
            throw Failure.connectFailed(target: target, reason: connectReason(error))
        }
        do {
            return try await channel.executeThenClose { inbound, outbound in
                // One write for head, body and end: a server that answers and closes as soon as
                // it has the head must not turn a later write into an error.
                var parts: [HTTPClientRequestPart] = [.head(head)]
                if let body, !body.isEmpty { parts.append(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
                parts.append(.end(nil))
                try await outbound.write(contentsOf: parts)

                var response = Response(status: 0)
                var sawHead = false
                for try await part in inbound {
                    switch part {
                    case .head(let head):
                        // 1xx answers (100 Continue) precede the real one; we never asked for them.
                        if head.status.code < 200 { continue }
                        sawHead = true
                        response.status = Int(head.status.code)
                        response.headers = head.headers.map { ($0.name, $0.value) }
                    case .body(let buffer):
                        try append(buffer, to: &response, limit: bodyLimit)
                    case .end:
                        if sawHead { return response }
                    }
                }
                throw Failure.closedEarly
            }
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure.transport(reason: "\(error)")
        }
    }

    private static func append(_ buffer: ByteBuffer, to response: inout Response, limit: BodyLimit) throws {
        switch limit {
        case .fail(let atMost):
            guard response.body.count + buffer.readableBytes <= atMost else { throw Failure.bodyTooLarge(limit: atMost) }
            response.body.append(contentsOf: buffer.readableBytesView)
        case .truncate(let keeping):
            let room = max(0, keeping - response.body.count)
            response.body.append(contentsOf: buffer.readableBytesView.prefix(room))
            if buffer.readableBytes > room { response.bodyTruncated = true }
        }
    }

    /// NIO's connection error lists every address tried; a person wants the one reason.
    private static func connectReason(_ error: any Error) -> String {
        if case ChannelError.connectTimeout = error { return "connection timed out" }
        guard let error = error as? NIOConnectionError else { return "\(error)" }
        if error.connectionErrors.isEmpty {
            return (error.dnsAError ?? error.dnsAAAAError) != nil ? "cannot resolve host \(error.host)" : "\(error)"
        }
        let reasons = error.connectionErrors.map { failure -> String in
            if let io = failure.error as? IOError { return String(cString: strerror(io.errnoCode)).lowercased() }
            if case ChannelError.connectTimeout = failure.error { return "connection timed out" }
            return "\(failure.error)"
        }
        // Happy eyeballs tries IPv6 and IPv4 alike; the same reason twice says nothing more.
        var unique: [String] = []
        for reason in reasons where !unique.contains(reason) { unique.append(reason) }
        return unique.joined(separator: "; ")
    }
}
