import ArgumentParser
import Foundation
import MeshRunner

/// `meshtrace prometheus-config`: a ready `prometheus.yml` for the running mesh, whose targets
/// come from the control plane's discovery endpoint.
struct PrometheusConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prometheus-config",
        abstract: "Print a prometheus.yml that scrapes every sidecar of the running mesh.",
        discussion: """
            The job discovers targets through the mesh's control plane (http_sd_configs at \
            /prometheus/targets), so it keeps working when the mesh restarts on new ports. \
            Example: meshtrace prometheus-config > prometheus.yml && prometheus --config.file=prometheus.yml
            """
    )

    @OptionGroup var control: ControlOptions
    @Option(name: .customLong("scrape-interval"), help: "How often Prometheus scrapes and re-reads the targets (e.g. 5s, 15s, 1m).")
    var scrapeInterval = "5s"

    func validate() throws {
        guard PrometheusConfig.isDuration(scrapeInterval) else {
            throw ValidationError("--scrape-interval must be a duration like 5s, 15s or 1m, got '\(scrapeInterval)'")
        }
    }

    func run() async throws {
        let data = try await control.request("/mesh/status")
        let status = try JSONDecoder().decode(MeshStatus.self, from: data)
        let base = try control.url("").absoluteString
        let controlURL = base.hasSuffix("/") ? String(base.dropLast()) : base
        print(PrometheusConfig.render(mesh: status.mesh, controlURL: controlURL, scrapeInterval: scrapeInterval), terminator: "")
    }
}
