import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import TraceModel
import TraceWire

/// Where spans go.
public struct SpanExportTarget: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case zipkin
        case otlp
        case none
    }

    public var kind: Kind
    /// Full URL, e.g. http://127.0.0.1:9411/api/v2/spans or http://127.0.0.1:4318/v1/traces.
    public var url: String?

    public init(kind: Kind, url: String?) {
        self.kind = kind
        self.url = url
    }

    public static let disabled = SpanExportTarget(kind: .none, url: nil)

    /// Picks the exporter from the URL's path unless `explicit` says otherwise:
    /// `…/api/v2/spans` is Zipkin, `…/v1/traces` OTLP/HTTP.
    public static func resolve(url: String?, explicit: Kind?) -> SpanExportTarget? {
        guard let url, !url.isEmpty else { return explicit == nil || explicit == SpanExportTarget.Kind.none ? .disabled : nil }
        if let explicit { return SpanExportTarget(kind: explicit, url: url) }
        if url.hasSuffix("/api/v2/spans") { return SpanExportTarget(kind: .zipkin, url: url) }
        if url.hasSuffix("/v1/traces") { return SpanExportTarget(kind: .otlp, url: url) }
        return nil
    }
}

/// The outcome of one export attempt, classified the way OTLP's retry rules need it.
public enum ExportOutcome: Sendable, Equatable {
    case exported
    /// 429/502/503/504 or a connection failure: try again, after `retryAfter` seconds if given.
    case retryable(reason: String, retryAfter: Double?)
    /// Any other failure: retrying would fail the same way.
    case rejected(reason: String)
}

/// Sends a batch of spans somewhere. Protocols at the seams (as swift-otel does) let tests use
/// an in-memory exporter and users point the sidecar at Zipkin, Jaeger, Tempo or our collector.
public protocol SpanExporter: Sendable {
    /// The format batches are built in before they reach `export`.
    var format: SpanWireFormat { get }
    func export(_ batch: EncodedSpanBatch) async -> ExportOutcome
}

/// Zipkin v2 JSON (`…/api/v2/spans`) or OTLP/HTTP protobuf (`…/v1/traces`) over HTTP/1.1.
public struct HTTPSpanExporter: SpanExporter {
    public let kind: SpanExportTarget.Kind
    let endpoint: HTTPEndpoint
    let group: any EventLoopGroup
    let timeout: Duration

    public init?(configuration: SpanExportTarget, group: any EventLoopGroup, timeout: Duration = .seconds(10)) {
        guard configuration.kind != .none, let url = configuration.url, let endpoint = HTTPEndpoint(url: url) else { return nil }
        self.kind = configuration.kind
        self.endpoint = endpoint
        self.group = group
        self.timeout = timeout
    }

    public var format: SpanWireFormat { kind == .zipkin ? .zipkinJSON : .otlpProtobuf }

    public func export(_ batch: EncodedSpanBatch) async -> ExportOutcome {
        do {
            let response = try await OneShotHTTPClient.post(
                endpoint, body: batch.body, contentType: batch.format.contentType, group: group, timeout: timeout)
            switch response.status {
            case 200..<300:
                return .exported
            case 429, 502, 503, 504:
                return .retryable(reason: "collector answered \(response.status)", retryAfter: response.retryAfterSeconds)
            default:
                return .rejected(reason: "collector answered \(response.status): \(response.bodyPrefix)")
            }
        } catch {
            return .retryable(reason: "\(error)", retryAfter: nil)
        }
    }
}

/// host, port and path of an http:// URL.
struct HTTPEndpoint: Sendable, Hashable {
    var host: String
    var port: Int
    var path: String

    init?(url: String) {
        guard let components = URLComponents(string: url), components.scheme == "http", let host = components.host, !host.isEmpty else { return nil }
        self.host = host
        self.port = components.port ?? 80
        self.path = components.percentEncodedPath.isEmpty ? "/" : components.percentEncodedPath
    }
}

struct ExportTimeout: Error, CustomStringConvertible {
    var description: String { "export timed out" }
}

/// One request per connection: exports are a few per second at most, so pooling buys nothing,
/// and a fresh connection never inherits a half-broken one.
enum OneShotHTTPClient {
    struct Response: Sendable {
        var status: Int
        var retryAfterSeconds: Double?
        var bodyPrefix: String
    }

    static func post(_ endpoint: HTTPEndpoint, body: [UInt8], contentType: String, group: any EventLoopGroup, timeout: Duration) async throws -> Response {
        try await withThrowingTaskGroup(of: Response.self) { tasks in
            tasks.addTask { try await send(endpoint, body: body, contentType: contentType, group: group) }
            tasks.addTask {
                try await Task.sleep(for: timeout)
                throw ExportTimeout()
            }
            defer { tasks.cancelAll() }
            guard let first = try await tasks.next() else { throw ExportTimeout() }
            return first
        }
    }

    private static func send(_ endpoint: HTTPEndpoint, body: [UInt8], contentType: String, group: any EventLoopGroup) async throws -> Response {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .connectTimeout(.seconds(5))
            .connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint.path)
            head.headers.add(name: "Host", value: "\(endpoint.host):\(endpoint.port)")
            head.headers.add(name: "Content-Type", value: contentType)
            head.headers.add(name: "Content-Length", value: String(body.count))
            head.headers.add(name: "Connection", value: "close")
            head.headers.add(name: "User-Agent", value: "meshtrace-sidecar")
            try await outbound.write(contentsOf: [.head(head), .body(.byteBuffer(ByteBuffer(bytes: body))), .end(nil)])
            var response = Response(status: 0, retryAfterSeconds: nil, bodyPrefix: "")
            for try await part in inbound {
                switch part {
                case .head(let head):
                    response.status = Int(head.status.code)
                    // Delay-seconds only; an HTTP-date or garbage falls back to our own backoff.
                    response.retryAfterSeconds = head.headers.first(name: "retry-after").flatMap(Double.init).flatMap {
                        $0.isFinite && $0 >= 0 ? $0 : nil
                    }
                case .body(let buffer):
                    if response.bodyPrefix.utf8.count < 300 { response.bodyPrefix += String(buffer: buffer) }
                case .end:
                    return response
                }
            }
            return response
        }
    }
}
