/// The balancer and outlier-detection options (`--lb-policy`, `--outlier-…`).
extension ConfigurationLoader {
    static let balancingOptions = [
        "lb-policy", "outlier-consecutive-5xx", "outlier-consecutive-gateway-failure", "outlier-base-ejection-time",
        "outlier-max-ejection-time", "outlier-max-ejection-percent",
    ]

    static func applyBalancing(_ option: String, _ v: String, to config: inout SidecarConfiguration) throws(ConfigurationError) {
        switch option {
        case "lb-policy":
            let normalized = v.lowercased().replacingUnderscores
            guard let policy = LoadBalancerPolicy(rawValue: normalized) else {
                throw ConfigurationError("--lb-policy must be least-request or round-robin, got '\(v)'")
            }
            config.loadBalancer = policy
        case "outlier-consecutive-5xx": config.outlierDetection.consecutive5xx = try count(v, option)
        case "outlier-consecutive-gateway-failure": config.outlierDetection.consecutiveGatewayFailure = try count(v, option)
        case "outlier-base-ejection-time":
            config.outlierDetection.baseEjectionMillis = Int(try duration(v, option, allowZero: false))
        case "outlier-max-ejection-time":
            config.outlierDetection.maxEjectionMillis = Int(try duration(v, option, allowZero: false))
        case "outlier-max-ejection-percent":
            guard let p = Double(v.hasSuffix("%") ? String(v.dropLast()) : v), (0...100).contains(p) else {
                throw ConfigurationError("--outlier-max-ejection-percent must be 0...100, got '\(v)'")
            }
            config.outlierDetection.maxEjectionPercent = p
        default:
            throw ConfigurationError("unknown option '\(option)'")
        }
    }
}
