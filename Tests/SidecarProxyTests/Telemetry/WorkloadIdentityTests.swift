import Logging
import Testing
import TraceExport
import TraceModel

@testable import SidecarProxy

/// The sidecar's names in a Kubernetes pod, from the downward-API environment `meshtrace inject`
/// gives it, and what Istio's metric labels then say.
@Suite struct WorkloadIdentityTests {
    static let podEnvironment = [
        "POD_NAME": "reviews-v2-7d9f8c6b5-x2k9z", "POD_NAMESPACE": "bookinfo", "POD_IP": "10.1.2.3",
        "MESHTRACE_WORKLOAD_NAME": "reviews-v2", "MESHTRACE_LABEL_APP": "reviews", "MESHTRACE_LABEL_VERSION": "v2",
        "MESHTRACE_LABEL_APP_NAME": "", "MESHTRACE_LABEL_APP_VERSION": "",
    ]

    @Test func namesFollowIstiosLabelOrder() throws {
        let id = try #require(WorkloadIdentity.kubernetes(environment: Self.podEnvironment, explicitService: nil))
        #expect(id.workload == "reviews-v2")
        #expect(id.namespace == "bookinfo")
        #expect(id.canonicalService == "reviews")
        #expect(id.canonicalRevision == "v2")
        #expect(id.app == "reviews" && id.version == "v2")
        #expect(id.nodeID == "sidecar~10.1.2.3~reviews-v2-7d9f8c6b5-x2k9z.bookinfo~bookinfo.svc.cluster.local")

        var env = Self.podEnvironment
        env["MESHTRACE_LABEL_APP_NAME"] = "reviews-api"
        env["MESHTRACE_LABEL_APP_VERSION"] = "2.4.1"
        let recommended = try #require(WorkloadIdentity.kubernetes(environment: env, explicitService: nil))
        #expect(recommended.canonicalService == "reviews-api" && recommended.canonicalRevision == "2.4.1")
        #expect(WorkloadIdentity.kubernetes(environment: env, explicitService: "mine")?.canonicalService == "mine")
    }

    @Test func withoutLabelsOrInjectorNameThePodNameIsTrimmed() throws {
        let id = try #require(WorkloadIdentity.kubernetes(
            environment: ["POD_NAMESPACE": "shop", "POD_NAME": "cart-5c7d8f9b4-x2k9z"], explicitService: nil))
        #expect(id.workload == "cart")
        #expect(id.canonicalService == "cart" && id.canonicalRevision == "latest")
        #expect(id.app == "unknown")
        #expect(WorkloadIdentity.workload(fromPodName: "web-0") == "web-0")
        #expect(WorkloadIdentity.workload(fromPodName: "agent-x7k2p") == "agent")
        #expect(WorkloadIdentity.kubernetes(environment: ["POD_NAME": "x"], explicitService: nil) == nil, "no namespace: not a pod")
    }

    @Test(arguments: [
        ("reviews.default.svc.cluster.local:9080", "reviews", "default"),
        ("reviews.default.svc.cluster.local.", "reviews", "default"),
        ("ratings.other.svc", "ratings", "other"),
        ("details", "details", "bookinfo"),
        ("details:9080", "details", "bookinfo"),
        ("Reviews.Default.SVC.example.org", "reviews", "default"),
    ])
    func serviceNamesFromHost(_ host: String, _ service: String, _ namespace: String) {
        #expect(KubernetesServiceName.parse(host: host, callerNamespace: "bookinfo") == KubernetesServiceName(service: service, namespace: namespace))
    }

    @Test(arguments: ["10.0.0.7", "10.0.0.7:80", "[::1]:80", "reviews.default", "example.com", "api.example.com", "localhost", "a..b.svc", "-x"])
    func hostsThatNameNoService(_ host: String) {
        #expect(KubernetesServiceName.parse(host: host, callerNamespace: "bookinfo") == nil)
    }

    /// Outbound from reviews-v2 to ratings in another namespace, and inbound from productpage:
    /// the labels Kiali's queries read.
    @Test func metricLabelsCarryTheIdentity() throws {
        let id = try #require(WorkloadIdentity.kubernetes(environment: Self.podEnvironment, explicitService: nil))
        let telemetry = SidecarTelemetry(
            configuration: TelemetryConfiguration(serviceName: id.canonicalService, namespace: id.namespace, identity: id),
            exporter: nil, logger: Logger(label: "test"), samplingPercent: { 100 })
        let context = TraceContext(traceID: TraceID(high: 0, low: 1), spanID: SpanID(2) ?? SpanID.random())
        telemetry.record(HopRecord(direction: .outbound, context: context, sampled: false, startNanos: 0, durationNanos: 1_000_000,
                                   method: "GET", path: "/ratings/1", authority: "ratings.other.svc.cluster.local:9080", statusCode: 200,
                                   requestID: "r", destinationService: "ratings.other.svc.cluster.local"))
        telemetry.record(HopRecord(direction: .inbound, context: context, sampled: false, startNanos: 0, durationNanos: 1_000_000,
                                   method: "GET", path: "/reviews/1", authority: "reviews:9080", statusCode: 200,
                                   requestID: "r", sourceService: "productpage", destinationService: "reviews"))
        let lines = telemetry.prometheusText().split(separator: "\n").filter { $0.hasPrefix("istio_requests_total{") }
        let outbound = try #require(lines.first { $0.contains("reporter=\"source\"") })
        for label in ["source_workload=\"reviews-v2\"", "source_workload_namespace=\"bookinfo\"", "source_app=\"reviews\"",
                      "source_version=\"v2\"", "source_canonical_service=\"reviews\"", "source_canonical_revision=\"v2\"",
                      "destination_service=\"ratings.other.svc.cluster.local\"", "destination_service_name=\"ratings\"",
                      "destination_service_namespace=\"other\"", "destination_workload_namespace=\"other\"",
                      "destination_canonical_service=\"ratings\""] {
            #expect(outbound.contains(label), "\(label) in \(outbound)")
        }
        let inbound = try #require(lines.first { $0.contains("reporter=\"destination\"") })
        for label in ["source_workload=\"productpage\"", "source_workload_namespace=\"bookinfo\"", "destination_workload=\"reviews-v2\"",
                      "destination_workload_namespace=\"bookinfo\"", "destination_canonical_service=\"reviews\"",
                      "destination_canonical_revision=\"v2\"", "destination_version=\"v2\"", "destination_service=\"reviews.bookinfo.svc.cluster.local\""] {
            #expect(inbound.contains(label), "\(label) in \(inbound)")
        }
    }

    /// Outside a pod nothing is renamed: a host that looks like a Service stays as it was.
    @Test func outsideKubernetesHostsAreNotRenamed() {
        let telemetry = SidecarTelemetry(configuration: TelemetryConfiguration(serviceName: "web"), exporter: nil,
                                         logger: Logger(label: "test"), samplingPercent: { 100 })
        let context = TraceContext(traceID: TraceID(high: 0, low: 1), spanID: SpanID(2) ?? SpanID.random())
        telemetry.record(HopRecord(direction: .outbound, context: context, sampled: false, startNanos: 0, durationNanos: 1,
                                   method: "GET", path: "/", authority: "x", statusCode: 200, requestID: "r",
                                   destinationService: "api.shop.svc.cluster.local"))
        #expect(telemetry.prometheusText().contains("destination_service_name=\"api.shop.svc.cluster.local\""))
    }
}
