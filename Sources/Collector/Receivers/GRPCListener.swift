import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import NIOCore
import ServiceLifecycle

/// Limits every gRPC listener applies to its clients.
public struct GRPCListenerLimits: Sendable, Hashable {
    /// Largest request message, after decompression (RESOURCE_EXHAUSTED above it). 16 MiB, as
    /// the HTTP receivers' body limit; OTLP's usual SDK batch is far below.
    public var maxMessageBytes: Int = 16 * 1024 * 1024
    /// Calls one connection may have open at once (the SETTINGS frame's MAX_CONCURRENT_STREAMS).
    /// SDKs keep a handful in flight; the cap stops one client holding a thousand queued exports.
    public var maxConcurrentStreams: Int = 100
    /// An idle connection is pinged after this long, and closed if the ping is not answered
    /// within `keepaliveTimeout`: a collector must not keep half-open connections from SDKs in
    /// pods that vanished.
    public var keepaliveTime: Duration = .seconds(120)
    public var keepaliveTimeout: Duration = .seconds(20)
    /// Clients may ping this often while no call is open (grpc-go's default client keepalive is
    /// off; Java's and Python's send none unless asked). Anything more frequent is a strike.
    public var minClientPingInterval: Duration = .seconds(30)

    public init() {}
}

/// PEM files for a TLS listener.
public struct GRPCTLSFiles: Sendable, Hashable {
    public var certificateChainPath: String
    public var privateKeyPath: String

    public init(certificateChainPath: String, privateKeyPath: String) {
        self.certificateChainPath = certificateChainPath
        self.privateKeyPath = privateKeyPath
    }
}

/// One gRPC server on one port, serving whatever services it is given, run as a
/// swift-service-lifecycle `Service`. OTLP's TraceService uses it on 4317; another protocol
/// (SkyWalking's collect on 11800, say) makes its own listener with its own services and port
/// rather than copying this set-up.
///
/// Graceful shutdown stops accepting calls and lets open ones finish, so an export already
/// being committed still gets its answer.
struct GRPCListener: Service {
    let name: String
    let host: String
    let port: Int
    let services: [any RegistrableRPCService]
    let limits: GRPCListenerLimits
    let tls: GRPCTLSFiles?
    let logger: Logger
    /// Called once the port is bound, with the port the kernel gave (port 0 asks for any).
    let onListening: @Sendable (Int) -> Void

    func run() async throws {
        let transport = HTTP2ServerTransport.Posix(
            address: Self.address(host: host, port: port), transportSecurity: security(), config: transportConfig())
        let server = GRPCServer(transport: transport, services: services)
        try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await server.serve() }
                let bound: Int
                do {
                    bound = try await transport.listeningAddress.port ?? port
                } catch {
                    // serve() ends with the bind's own error; wait for it so it is the one reported.
                    do { try await group.next() } catch { throw ListenerFailure(name: name, host: host, port: port, cause: error) }
                    throw ListenerFailure(name: name, host: host, port: port, cause: error)
                }
                onListening(bound)
                do {
                    try await group.next()
                } catch {
                    throw ListenerFailure(name: name, host: host, port: port, cause: error)
                }
            }
        } onGracefulShutdown: {
            server.beginGracefulShutdown()
        }
    }

    private func transportConfig() -> HTTP2ServerTransport.Posix.Config {
        .defaults { config in
            config.rpc.maxRequestPayloadSize = limits.maxMessageBytes
            config.http2.maxConcurrentStreams = limits.maxConcurrentStreams
            // OTLP exporters may gzip (the Python SDK's `compression=gzip`, Go's WithCompressor).
            config.compression.enabledAlgorithms = [.gzip, .deflate]
            config.connection.keepalive = .init(
                time: limits.keepaliveTime, timeout: limits.keepaliveTimeout,
                clientBehavior: .init(minPingIntervalWithoutCalls: limits.minClientPingInterval, allowWithoutCalls: true))
        }
    }

    private func security() -> HTTP2ServerTransport.Posix.TransportSecurity {
        guard let tls else { return .plaintext }
        return .tls(
            certificateChain: [.file(path: tls.certificateChainPath, format: .pem)],
            privateKey: .file(path: tls.privateKeyPath, format: .pem))
    }

    /// grpc-swift binds numeric addresses only; "localhost" is the name people type.
    static func address(host: String, port: Int) -> GRPCNIOTransportCore.SocketAddress {
        let numeric = host == "localhost" ? "127.0.0.1" : host
        return numeric.contains(":") ? .ipv6(host: numeric, port: port) : .ipv4(host: numeric, port: port)
    }
}

extension GRPCNIOTransportCore.SocketAddress {
    var port: Int? { ipv4?.port ?? ipv6?.port }
}

/// A listener that could not start or stopped on an error, said so a person knows which port.
struct ListenerFailure: Error, CustomStringConvertible {
    let name: String
    let host: String
    let port: Int
    let cause: any Error

    var description: String { "\(name) listener on \(host):\(port) failed: \(cause)" }
}
