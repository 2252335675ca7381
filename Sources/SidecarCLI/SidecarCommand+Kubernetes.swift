import Foundation
import SidecarProxy

extension SidecarCommand {
    /// In a Kubernetes pod (the injector sets `POD_NAMESPACE` and the rest from the downward
    /// API), the sidecar names itself after its workload: the canonical service becomes the
    /// service name its spans and the next hop's `x-envoy-downstream-service-cluster` carry,
    /// unless `--service` was given. nil outside a pod.
    static func kubernetesIdentity(_ config: inout SidecarConfiguration, environment: [String: String]) -> WorkloadIdentity? {
        let explicit = config.serviceName == SidecarConfiguration().serviceName ? nil : config.serviceName
        guard let identity = WorkloadIdentity.kubernetes(environment: environment, explicitService: explicit) else { return nil }
        config.serviceName = identity.canonicalService
        return identity
    }
}
