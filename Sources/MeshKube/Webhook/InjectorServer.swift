import Hummingbird
import HummingbirdTLS
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// `meshtrace injector`: the mutating admission webhook, HTTPS only (the API server calls
/// webhooks over TLS and checks the certificate against the configuration's `caBundle`).
/// `POST /inject` takes an `AdmissionReview`; `GET /healthz` answers `ok` for the kubelet.
public struct InjectorServer: Sendable {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        public var certificateFile: String
        public var privateKeyFile: String
        /// Larger bodies get 400. The API server's own request limit is 3 MiB and a review
        /// holds the object once for CREATE (twice for UPDATE), so 8 MiB refuses nothing real.
        public var maxBodyBytes: Int

        public init(host: String = "0.0.0.0", port: Int = 9443, certificateFile: String, privateKeyFile: String, maxBodyBytes: Int = 8 << 20) {
            self.host = host
            self.port = port
            self.certificateFile = certificateFile
            self.privateKeyFile = privateKeyFile
            self.maxBodyBytes = maxBodyBytes
        }
    }

    public var configuration: Configuration
    public var handler: AdmissionHandler
    public var logger: Logger

    public init(configuration: Configuration, handler: AdmissionHandler, logger: Logger) {
        self.configuration = configuration
        self.handler = handler
        self.logger = logger
    }

    /// Reads the certificate chain and key; a missing or broken file is a start-up error naming it.
    public func tlsConfiguration() throws -> TLSConfiguration {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(configuration.certificateFile)
        } catch {
            throw InjectorError("cannot read the TLS certificate \(configuration.certificateFile): \(error)")
        }
        guard !chain.isEmpty else { throw InjectorError("\(configuration.certificateFile) holds no PEM certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: configuration.privateKeyFile, format: .pem)
        } catch {
            throw InjectorError("cannot read the TLS private key \(configuration.privateKeyFile): \(error)")
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        return tls
    }

    /// Serves until SIGTERM or SIGINT. `onListening` gets the bound port (for port 0).
    public func run(onListening: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let tls = try tlsConfiguration()
        let router = Router()
        let handler = self.handler
        let maxBody = configuration.maxBodyBytes
        router.get("/healthz") { _, _ in "ok\n" }
        router.post("/inject") { request, _ -> Response in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: maxBody)
            } catch {
                return Self.text(.badRequest, "request body over \(maxBody) bytes\n")
            }
            switch handler.answer(Array(buffer: body)) {
            case .badRequest(let reason):
                return Self.text(.badRequest, reason + "\n")
            case .review(let review):
                var out = ByteBuffer()
                out.writeBytes(review.jsonBytes)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: out))
            }
        }
        let logger = self.logger
        let host = configuration.host
        let app = Application(
            router: router,
            server: try .tls(.http1(), tlsConfiguration: tls),
            configuration: ApplicationConfiguration(address: .hostname(host, port: configuration.port), serverName: "meshtrace-injector"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.info("meshtrace injector listening", metadata: ["address": "https://\(host):\(port)/inject"])
                onListening(port)
            },
            logger: Logger(label: "meshtrace.injector.http", factory: { label in
                var h = StreamLogHandler.standardError(label: label)
                h.logLevel = max(.warning, logger.logLevel)
                return h
            })
        )
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }

    static func text(_ status: HTTPResponse.Status, _ message: String) -> Response {
        var out = ByteBuffer()
        out.writeString(message)
        return Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"], body: .init(byteBuffer: out))
    }
}

public struct InjectorError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
