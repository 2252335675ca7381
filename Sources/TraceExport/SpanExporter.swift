import Foundation
import NIOCore
import TraceModel
import TraceWire

/// Where spans go.
public struct SpanExportTarget: Sendable, Hashable {
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case zipkin
        /// Zipkin v2 as proto3 on the same endpoint (Zipkin, Jaeger, Tempo and ours accept it).
        case zipkinProto = "zipkin-proto"
        case otlp
        /// OTLP/gRPC (`TraceService/Export`) to `grpc://host:4317` (plaintext).
        case otlpGRPC = "otlp-grpc"
        case none
    }

    public var kind: Kind
    /// Full URL, e.g. http://127.0.0.1:9411/api/v2/spans, http://127.0.0.1:4318/v1/traces or
    /// grpc://127.0.0.1:4317.
    public var url: String?

    public init(kind: Kind, url: String?) {
        self.kind = kind
        self.url = url
    }

    public static let disabled = SpanExportTarget(kind: .none, url: nil)

    /// Picks the exporter from the URL's path unless `explicit` says otherwise:
    /// `…/api/v2/spans` is Zipkin, `…/v1/traces` OTLP/HTTP, `grpc://…` OTLP/gRPC.
    public static func resolve(url: String?, explicit: Kind?) -> SpanExportTarget? {
        guard let url, !url.isEmpty else { return explicit == nil || explicit == SpanExportTarget.Kind.none ? .disabled : nil }
        if let explicit { return SpanExportTarget(kind: explicit, url: url) }
        if url.lowercased().hasPrefix("grpc://") { return SpanExportTarget(kind: .otlpGRPC, url: url) }
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

extension SpanExportTarget {
    /// The exporter for this target: OTLP/gRPC over HTTP/2, the others over HTTP/1.1. Nil when
    /// export is off or the URL does not fit the kind.
    public func makeExporter(group: any EventLoopGroup, timeout: Duration = .seconds(10)) -> (any SpanExporter)? {
        switch kind {
        case .none: return nil
        case .otlpGRPC: return url.flatMap { GRPCSpanExporter(url: $0, group: group, timeout: timeout) }
        case .zipkin, .zipkinProto, .otlp: return HTTPSpanExporter(configuration: self, group: group, timeout: timeout)
        }
    }
}

/// Zipkin v2 JSON (`…/api/v2/spans`) or OTLP/HTTP protobuf (`…/v1/traces`) over HTTP/1.1.
public struct HTTPSpanExporter: SpanExporter {
    public let kind: SpanExportTarget.Kind
    let endpoint: HTTPEndpoint
    let group: any EventLoopGroup
    let timeout: Duration

    public init?(configuration: SpanExportTarget, group: any EventLoopGroup, timeout: Duration = .seconds(10)) {
        guard configuration.kind != .none, configuration.kind != .otlpGRPC, let url = configuration.url, let endpoint = HTTPEndpoint(url: url) else { return nil }
        self.kind = configuration.kind
        self.endpoint = endpoint
        self.group = group
        self.timeout = timeout
    }

    public var format: SpanWireFormat {
        switch kind {
        case .zipkin: return .zipkinJSON
        case .zipkinProto: return .zipkinProto
        case .otlp, .otlpGRPC, .none: return .otlpProtobuf
        }
    }

    /// Enough of a rejection's body to say why in a log line; the rest is read and dropped, so
    /// a sidecar never holds a large error page.
    static let reasonBodyBytes = 300

    public func export(_ batch: EncodedSpanBatch) async -> ExportOutcome {
        do {
            let response = try await OneShotHTTPClient.send(
                .POST, to: endpoint, body: batch.body, contentType: batch.format.contentType,
                headers: [("User-Agent", "meshtrace-sidecar")], timeout: timeout,
                bodyLimit: .truncate(keeping: Self.reasonBodyBytes), group: group)
            switch response.status {
            case 200..<300:
                return .exported
            case 429, 502, 503, 504:
                return .retryable(reason: "collector answered \(response.status)", retryAfter: response.retryAfterSeconds)
            default:
                return .rejected(reason: "collector answered \(response.status): \(String(decoding: response.body, as: UTF8.self))")
            }
        } catch OneShotHTTPClient.Failure.timedOut {
            return .retryable(reason: "export timed out", retryAfter: nil)
        } catch {
            return .retryable(reason: "\(error)", retryAfter: nil)
        }
    }
}
