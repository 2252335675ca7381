import Foundation

/// Prometheus HTTP service discovery (`http_sd_configs`) for a running mesh, served by the
/// control plane at `/prometheus/targets`: one target group per sidecar metrics listener (the
/// gateway's too) and one for the embedded collector's `/metrics`. Prometheus reads it again
/// every `refresh_interval`, so targets follow the mesh as it restarts on new ports.
/// Format: https://prometheus.io/docs/prometheus/latest/http_sd/ (a JSON list of
/// `{"targets": [...], "labels": {...}}`; `__metrics_path__` sets each group's path).
enum PrometheusTargets {
    struct Group: Encodable, Equatable {
        var targets: [String]
        var labels: [String: String]
    }

    static let sidecarPath = "/stats/prometheus"

    // No label a sidecar's own series carry (`component` is on `istio_build`): a target label
    // of the same name would replace it, and the scraped one would become `exported_component`.

    static func groups(mesh: String, namespace: String, sidecars: [(service: String, metrics: String?)], collectorAdmin: String?) -> [Group] {
        var groups = sidecars.compactMap { sidecar -> Group? in
            guard let address = sidecar.metrics else { return nil }
            return Group(targets: [address], labels: [
                "__metrics_path__": sidecarPath, "meshtrace_mesh": mesh, "service": sidecar.service,
                "workload": sidecar.service, "namespace": namespace,
            ])
        }
        if let collectorAdmin {
            groups.append(Group(targets: [collectorAdmin], labels: [
                "__metrics_path__": "/metrics", "meshtrace_mesh": mesh, "service": "meshtrace-collector", "namespace": namespace,
            ]))
        }
        return groups
    }

    static func json(_ groups: [Group]) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(groups)) ?? Data("[]".utf8)
    }
}

/// A `prometheus.yml` that scrapes a running mesh through its control plane's discovery
/// endpoint; what `meshtrace prometheus-config` prints and `up --prometheus` runs with.
public enum PrometheusConfig {
    public static func render(mesh: String, controlURL: String, scrapeInterval: String = "5s") -> String {
        """
        # Prometheus configuration for the meshtrace mesh '\(mesh)'. Targets come from the mesh's
        # control plane (\(controlURL)), so they follow it when it restarts on new ports.
        # Use the file as it is (prometheus --config.file=...), or copy the job under your own
        # scrape_configs.
        global:
          scrape_interval: \(scrapeInterval)
          evaluation_interval: \(scrapeInterval)
        scrape_configs:
          - job_name: meshtrace-\(mesh)
            scrape_interval: \(scrapeInterval)
            metrics_path: \(PrometheusTargets.sidecarPath)
            http_sd_configs:
              - url: \(controlURL)/prometheus/targets
                refresh_interval: \(scrapeInterval)

        """
    }

    /// A duration Prometheus takes: a number and a unit (ms, s, m, h), e.g. 5s, 1m.
    public static func isDuration(_ text: String) -> Bool {
        text.range(of: "^[0-9]+(ms|s|m|h)$", options: .regularExpression) != nil && !text.hasPrefix("0")
    }
}
