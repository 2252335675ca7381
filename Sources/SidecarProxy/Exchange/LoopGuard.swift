/// Loop detection: a request that leaves a proxy through an outbound or gateway listener is
/// marked (`x-meshtrace-via`), and every inbound listener strips the mark. So a request that
/// reaches an outbound listener already marked came back to a proxy without passing an app: a
/// loop (an app pointed its proxy settings at a proxy port, a passthrough to the sidecar
/// itself). It gets 508 at once instead of going round until something runs out. The same for
/// HTTP/1 and HTTP/2.
enum LoopGuard {
    static let header = "x-meshtrace-via"
    static let reason = "request looped back into an outbound listener (passthrough to a proxy port?)"

    /// Whether a request arriving on this listener with (or without) the mark is a loop.
    static func isLoop(direction: ProxyDirection, marked: Bool) -> Bool {
        direction == .outbound && marked
    }

    /// Who sent the request, and the mesh's own fields for the next hop: outbound and gateway
    /// listeners name this service (`x-envoy-downstream-service-cluster`, which the next inbound
    /// sidecar reads as the source) and mark the request as having left a proxy. Inbound
    /// listeners add nothing: the caller's sidecar named the source.
    static func addMarkers(
        direction: ProxyDirection, serviceName: String, scan: RequestHeadScan, into added: inout AddedHeaders
    ) -> String? {
        switch direction {
        case .inbound:
            return scan.downstreamCluster
        case .outbound, .gateway:
            added.add("x-envoy-downstream-service-cluster", serviceName)
            added.add(header, direction.rawValue)
            return serviceName
        }
    }
}
