import Foundation
import Testing

@testable import MeshRunner

/// mesh.yaml's routes, metricsPort and prometheus keys, the discovery document and the
/// generated prometheus.yml.
@Suite struct MeshPrometheusTests {
    let parser = MeshFileParser(fileName: "mesh.yaml")
    let base = "services:\n  - name: web\n    command: ./web\n"

    @Test func prometheusTakesTrueOrAMapping() throws {
        #expect(try parser.parse(base + "prometheus: true\n").prometheus == PrometheusSpec())
        #expect(try parser.parse(base + "prometheus: false\n").prometheus == nil)
        let spec = try parser.parse(base + "prometheus:\n  port: 9090\n  scrapeInterval: 15s\n").prometheus
        #expect(spec == PrometheusSpec(port: 9090, scrapeInterval: "15s"))
        #expect(throws: MeshFileError.self) { try parser.parse(base + "prometheus:\n  scrapeInterval: often\n") }
    }

    @Test func fixedMetricsPortsAreCheckedWithTheirKeys() throws {
        let file = try parser.parse(base + "    metricsPort: 15090\n    routes: [\"/a/{id}\"]\ngateway:\n  port: 0\n  metricsPort: 15091\n  routes:\n    /: web\n")
        #expect(file.services[0].metricsPort == 15090)
        #expect(file.services[0].routes == ["/a/{id}"])
        let ports = file.fixedPorts(controlPort: 0)
        #expect(ports.contains(MeshPort(setting: "services[0].metricsPort (web)", port: 15090)))
        #expect(ports.contains(MeshPort(setting: "gateway.metricsPort", port: 15091)))
    }

    @Test func aBadRouteTemplateNamesItsLineAndIndex() {
        do {
            _ = try parser.parse(base + "    routes: [\"/ok/{id}\", \"/bad/x{id}\"]\n")
            Issue.record("parsed")
        } catch {
            #expect(error.field == "services[0].routes[1]")
            #expect(error.line == 4)
        }
    }

    @Test func discoveryHasOneGroupPerSidecarAndTheCollector() throws {
        let groups = PrometheusTargets.groups(mesh: "shop", namespace: "default",
                                              sidecars: [("web", "127.0.0.1:1"), ("gateway", "127.0.0.1:2"), ("gone", nil)],
                                              collectorAdmin: "127.0.0.1:3")
        #expect(groups.map(\.targets) == [["127.0.0.1:1"], ["127.0.0.1:2"], ["127.0.0.1:3"]])
        #expect(groups[0].labels == ["__metrics_path__": "/stats/prometheus", "meshtrace_mesh": "shop", "service": "web",
                                     "workload": "web", "namespace": "default"])
        #expect(groups[2].labels["__metrics_path__"] == "/metrics")
        let decoded = try JSONSerialization.jsonObject(with: PrometheusTargets.json(groups)) as? [[String: Any]]
        #expect(decoded?.count == 3)
    }

    @Test func theConfigPointsAtTheControlPlane() {
        let text = PrometheusConfig.render(mesh: "shop", controlURL: "http://127.0.0.1:15100", scrapeInterval: "5s")
        #expect(text.contains("job_name: meshtrace-shop"))
        #expect(text.contains("- url: http://127.0.0.1:15100/prometheus/targets"))
        #expect(text.contains("metrics_path: /stats/prometheus"))
        #expect(PrometheusConfig.isDuration("15s") && PrometheusConfig.isDuration("1m") && !PrometheusConfig.isDuration("0s")
                && !PrometheusConfig.isDuration("5"))
    }
}
