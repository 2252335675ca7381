/// Which listener handled a request. Inbound makes SERVER spans, outbound and gateway CLIENT
/// and SERVER (gateway: the root) spans, as Envoy sidecars and gateways do.
public enum ProxyDirection: String, Sendable, Hashable {
    case inbound
    case outbound
    case gateway
}
