import ArgumentParser
import Foundation
import Logging
import MeshKube
import SidecarCLI

/// `meshtrace injector`: the mutating admission webhook `meshtrace install` deploys. It answers
/// `AdmissionReview`s for pods with the JSON patch that makes `meshtrace inject`'s pod.
struct InjectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "injector",
        abstract: "Run the sidecar injector webhook (HTTPS): POST /inject takes AdmissionReviews, GET /healthz.",
        discussion: """
            Pods in namespaces labelled meshtrace-injection=enabled get the same sidecar `meshtrace inject` \
            adds; the annotation meshtrace.io/inject: "false" opts a pod out. Malformed reviews are allowed \
            unchanged with a warning (the webhook fails open); a body that is not JSON or is too large gets 400.
            """
    )

    @Option(name: .customLong("host"), help: "Address to listen on (default 0.0.0.0).")
    var host: String = "0.0.0.0"
    @Option(name: .customLong("port"), help: "HTTPS port (default 9443; 0 picks a free one).")
    var port: Int = 9443
    @Option(name: .customLong("tls-cert"), help: "PEM certificate chain for the webhook's Service name.")
    var tlsCert: String
    @Option(name: .customLong("tls-key"), help: "PEM private key of --tls-cert.")
    var tlsKey: String
    @Option(name: .customLong("max-body-bytes"), help: "Largest request body; larger gets 400 (default 8 MiB).")
    var maxBodyBytes: Int = 8 << 20
    @OptionGroup var flags: KubeInjectFlags
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port: expected 0-65535, got \(port)") }
        guard maxBodyBytes > 0 else { throw ValidationError("--max-body-bytes: must be positive") }
        _ = try flags.options()
    }

    func run() async throws {
        let logger = bootstrapLogging(logLevel, label: "meshtrace.injector")
        let options = try flags.options()
        let server = InjectorServer(
            configuration: .init(host: host, port: port, certificateFile: tlsCert, privateKeyFile: tlsKey, maxBodyBytes: maxBodyBytes),
            handler: AdmissionHandler(options: options), logger: logger)
        do {
            try await server.run()
        } catch let error as InjectorError {
            throw KubeCommandOutput.fail(error.description)
        } catch {
            throw KubeCommandOutput.fail("injector: \(error)")
        }
    }
}
