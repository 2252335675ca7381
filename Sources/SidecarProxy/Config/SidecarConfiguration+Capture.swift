/// Transparent capture's settings: the two listeners iptables redirects to, and the health port
/// a pod's probes reach (the Istio ports: 15006, 15001, 15021).
public struct CaptureSettings: Sendable, Equatable {
    public var enabled = false
    public var inboundPort = 15006
    public var outboundPort = 15001
    /// `GET /healthz/ready` on all addresses; nil: 15021 in capture mode, off otherwise.
    public var healthPort: Int?
    /// How long a captured connection may stay silent before it is relayed as plain TCP. HTTP
    /// clients speak first; a server-first protocol (MySQL, SMTP) would otherwise wait for
    /// bytes that never come. 100 ms is what Istio's `protocolDetectionTimeout` was.
    public var detectionTimeoutMillis: Int64 = 100

    public init() {}

    /// The health listener's port, or nil when it does not run.
    public var effectiveHealthPort: Int? {
        let port = healthPort ?? (enabled ? 15021 : -1)
        return port >= 0 ? port : nil
    }
}

extension ConfigurationLoader {
    static func applyCapture(_ option: String, _ v: String, to config: inout SidecarConfiguration) throws(ConfigurationError) {
        switch option {
        case "capture": config.capture.enabled = try flag(v, option)
        case "inbound-capture-port": config.capture.inboundPort = try port(v, option)
        case "outbound-capture-port": config.capture.outboundPort = try port(v, option)
        case "health-port": config.capture.healthPort = try port(v, option)
        case "protocol-detection-timeout": config.capture.detectionTimeoutMillis = try duration(v, option, allowZero: false)
        default: throw ConfigurationError("unknown option '\(option)'")
        }
    }
}

extension SidecarConfiguration {
    /// Capture's cross-field rules: its ports are its own.
    func validateCapture() throws(ConfigurationError) {
        guard capture.enabled else {
            if capture.inboundPort != 15006 || capture.outboundPort != 15001 {
                throw ConfigurationError("--inbound-capture-port and --outbound-capture-port need --capture")
            }
            return
        }
        #if !os(Linux)
        throw ConfigurationError("--capture needs Linux (iptables REDIRECT and SO_ORIGINAL_DST)")
        #else
        for (flag, port) in [("inbound-capture-port", capture.inboundPort), ("outbound-capture-port", capture.outboundPort)] where port < 0 || port > 65535 {
            throw ConfigurationError("--\(flag) must be a port 0...65535 with --capture, got \(port)")
        }
        var used: [(String, Int)] = [("inbound-capture-port", capture.inboundPort), ("outbound-capture-port", capture.outboundPort)]
        if let health = capture.effectiveHealthPort { used.append(("health-port", health)) }
        if inboundEnabled { used.append(("inbound-port", inboundPort)) }
        if outboundEnabled { used.append(("outbound-port", outboundPort)) }
        if metricsPort >= 0 { used.append(("metrics-port", metricsPort)) }
        if adminPort >= 0 { used.append(("admin-port", adminPort)) }
        for (i, a) in used.enumerated() where a.1 > 0 {
            if let b = used[(i + 1)...].first(where: { $0.1 == a.1 }) {
                throw ConfigurationError("--\(a.0) and --\(b.0) are both \(a.1): each listener needs its own port")
            }
        }
        #endif
    }
}
