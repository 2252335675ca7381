import Foundation
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix

/// OTLP/gRPC export: `TraceService/Export`, the one unary call, over one plaintext HTTP/2
/// connection kept open and reused for every batch (a new connection is made only after the
/// old one fails or the collector closes it).
///
/// Written on swift-nio-http2, which the sidecar already links for h2c, instead of grpc-swift:
/// grpc-swift's client transport brings swift-nio-ssl, swift-certificates and swift-crypto,
/// which measured several MB and minutes of cold build for a call that is one HEADERS and one
/// DATA frame each way (docs/performance.md, "OTLP/gRPC export: grpc-swift or swift-nio-http2").
public actor GRPCSpanExporter: SpanExporter {
    public nonisolated let format = SpanWireFormat.otlpProtobuf
    public nonisolated let host: String
    public nonisolated let port: Int
    let group: any EventLoopGroup
    let timeout: Duration
    private var connection: Connection?

    static let path = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

    private struct Connection {
        let channel: any Channel
        let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
    }

    /// `url` is `grpc://host:port` or `http://host:port` (as OTEL_EXPORTER_OTLP_ENDPOINT is
    /// written for a plaintext gRPC collector); nil for anything else.
    public init?(url: String, group: any EventLoopGroup, timeout: Duration = .seconds(10)) {
        guard let (host, port) = Self.hostAndPort(url) else { return nil }
        self.host = host
        self.port = port
        self.group = group
        self.timeout = timeout
    }

    static func hostAndPort(_ url: String) -> (String, Int)? {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "grpc" || scheme == "http", let rawHost = components.host, !rawHost.isEmpty,
              components.percentEncodedPath.isEmpty || components.percentEncodedPath == "/"
        else { return nil }
        let host = rawHost.hasPrefix("[") && rawHost.hasSuffix("]") ? String(rawHost.dropFirst().dropLast()) : rawHost
        return (host, components.port ?? 4317)
    }

    public func export(_ batch: EncodedSpanBatch) async -> ExportOutcome {
        do {
            let call = try await withTimeout { try await self.send(batch.body) }
            return call.outcome
        } catch is TimedOut {
            drop()
            return .retryable(reason: "export timed out after \(timeout)", retryAfter: nil)
        } catch {
            drop()
            return .retryable(reason: "\(error)", retryAfter: nil)
        }
    }

    /// One call on the kept connection; a connection that turns out to be dead (the collector
    /// restarted, or closed it as idle) is replaced once, at once, rather than failing the batch.
    private func send(_ message: [UInt8]) async throws -> GRPCCallResult {
        if let existing = connection, existing.channel.isActive {
            do {
                return try await call(on: existing, message: message)
            } catch {
                drop()
            }
        }
        let fresh = try await connect()
        connection = fresh
        return try await call(on: fresh, message: message)
    }

    private func connect() async throws -> Connection {
        try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(5))
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client) { stream in
                        stream.eventLoop.makeSucceededVoidFuture()
                    }
                    return Connection(channel: channel, multiplexer: multiplexer)
                }
            }
    }

    private func drop() {
        connection?.channel.close(promise: nil)
        connection = nil
    }

    private func call(on connection: Connection, message: [UInt8]) async throws -> GRPCCallResult {
        let stream = try await connection.multiplexer.openStream { channel in
            channel.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: channel)
            }
        }
        let authority = host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
        return try await stream.executeThenClose { inbound, outbound in
            let headers: HPACKHeaders = [
                ":method": "POST", ":scheme": "http", ":path": Self.path, ":authority": authority,
                "content-type": "application/grpc", "te": "trailers", "user-agent": "meshtrace-otlp-grpc",
                "grpc-timeout": "\(max(1, Int(timeout.components.seconds)))S",
            ]
            try await outbound.write(.headers(.init(headers: headers)))
            // Length-prefixed message: flag 0 (not compressed), 4-byte big-endian length.
            var buffer = ByteBufferAllocator().buffer(capacity: message.count + 5)
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt32(message.count))
            buffer.writeBytes(message)
            try await outbound.write(.data(.init(data: .byteBuffer(buffer), endStream: true)))
            var state = GRPCUnaryCall()
            for try await frame in inbound {
                if case .headers(let h) = frame.self {
                    state.receiveHeaders(h.headers.map { ($0.name, $0.value) }, endStream: h.endStream)
                }
                if let result = state.result { return result }
            }
            state.streamClosed()
            return state.result ?? GRPCCallResult(code: .unavailable, message: "stream closed", retryDelay: nil)
        }
    }

    private struct TimedOut: Error {}

    private func withTimeout<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let timeout = self.timeout
        return try await withThrowingTaskGroup(of: T.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TimedOut()
            }
            defer { group.cancelAll() }
            guard let first = try await group.next() else { throw TimedOut() }
            return first
        }
    }
}
