/// Envoy's `outlier_detection` for one service's endpoints: consecutive 5xx and consecutive
/// gateway failures eject an endpoint for `baseEjection × ejections` (capped at `maxEjection`),
/// as many endpoints as `maxEjectionPercent` allows but always one. A pure value: every event
/// carries the time (monotonic nanoseconds), so tests advance a number, never sleep.
public struct OutlierDetector: Sendable {
    /// The fields of Envoy's `OutlierDetection` that are implemented, with Envoy's defaults
    /// except where said:
    /// - `consecutive5xx` 5 (Envoy 5). Local failures (connect failure, reset before the
    ///   response, per-try timeout) count as 5xx, as in Envoy when
    ///   `split_external_local_origin_errors` is false (its default).
    /// - `consecutiveGatewayFailure` 5 (Envoy 5), **enforced** here, where Envoy's
    ///   `enforcing_consecutive_gateway_failure` defaults to 0: the brief for this proxy is to
    ///   eject a replica that refuses connections, and a gateway failure (502, 503, 504, a local
    ///   failure) is the clearest sign of it. 0 turns either check off.
    /// - `baseEjectionMillis` 30 s, `maxEjectionMillis` 300 s (Envoy's `base_ejection_time` and
    ///   `max_ejection_time`).
    /// - `maxEjectionPercent` 10 (Envoy 10), with Envoy's rule that one endpoint can always be
    ///   ejected: with the 3 replicas of a typical `replicas: 3`, 10 % would otherwise allow none.
    /// Not implemented: the success-rate and failure-percentage detectors, `interval` (an
    /// endpoint returns the moment its time is up, not at the next 10 s sweep), and the decay of
    /// the ejection multiplier while an endpoint stays healthy (it only grows here).
    public struct Settings: Sendable, Hashable {
        public var consecutive5xx = 5
        public var consecutiveGatewayFailure = 5
        public var baseEjectionMillis = 30_000
        public var maxEjectionMillis = 300_000
        public var maxEjectionPercent = 10.0

        public init() {}
    }

    /// What one attempt to an endpoint came to.
    public enum Outcome: Sendable, Equatable {
        /// The endpoint answered with this status.
        case response(Int)
        /// No answer: connect failure, reset before the response, per-try timeout.
        case localFailure
    }

    public struct Host: Sendable, Equatable {
        public var consecutive5xx = 0
        public var consecutiveGatewayFailures = 0
        /// Times ejected so far: the multiplier of the next ejection's time.
        public var ejections = 0
        /// Ejected until this monotonic time (nanoseconds).
        public var ejectedUntil: UInt64?
    }

    public let settings: Settings
    public private(set) var hosts: [Host]

    public init(hosts count: Int, settings: Settings = Settings()) {
        self.settings = settings
        self.hosts = Array(repeating: Host(), count: count)
    }

    /// Records an outcome; true when it ejected the endpoint.
    @discardableResult
    public mutating func record(_ outcome: Outcome, host i: Int, now: UInt64) -> Bool {
        guard hosts.indices.contains(i) else { return false }
        let gateway: Bool
        switch outcome {
        case .response(let status) where status >= 500 && status <= 599:
            gateway = status == 502 || status == 503 || status == 504
        case .response:
            hosts[i].consecutive5xx = 0
            hosts[i].consecutiveGatewayFailures = 0
            return false
        case .localFailure:
            gateway = true
        }
        hosts[i].consecutive5xx += 1
        if gateway { hosts[i].consecutiveGatewayFailures += 1 } else { hosts[i].consecutiveGatewayFailures = 0 }
        let tripped = (settings.consecutive5xx > 0 && hosts[i].consecutive5xx >= settings.consecutive5xx)
            || (settings.consecutiveGatewayFailure > 0 && hosts[i].consecutiveGatewayFailures >= settings.consecutiveGatewayFailure)
        guard tripped, !isEjected(i, now: now), mayEject(now: now) else { return false }
        hosts[i].ejections += 1
        let (grown, overflow) = settings.baseEjectionMillis.multipliedReportingOverflow(by: hosts[i].ejections)
        let cap = max(settings.maxEjectionMillis, settings.baseEjectionMillis)
        let millis = UInt64(max(0, overflow ? cap : min(grown, cap)))
        let (until, past) = now.addingReportingOverflow(millis.multipliedReportingOverflow(by: 1_000_000).partialValue)
        hosts[i].ejectedUntil = past ? UInt64.max : until
        hosts[i].consecutive5xx = 0
        hosts[i].consecutiveGatewayFailures = 0
        return true
    }

    /// Whether the endpoint is out of rotation at `now` (its time up: it is back).
    public func isEjected(_ i: Int, now: UInt64) -> Bool {
        guard hosts.indices.contains(i), let until = hosts[i].ejectedUntil else { return false }
        return now < until
    }

    public func ejectedCount(now: UInt64) -> Int {
        hosts.indices.reduce(0) { $0 + (isEjected($1, now: now) ? 1 : 0) }
    }

    /// Envoy's limit: one more ejection keeps the ejected share within `maxEjectionPercent`,
    /// or nothing is ejected yet (at least one host can always be ejected).
    func mayEject(now: UInt64) -> Bool {
        let ejected = ejectedCount(now: now)
        if ejected == 0 { return !hosts.isEmpty }
        return Double(ejected + 1) * 100 / Double(hosts.count) <= settings.maxEjectionPercent
    }
}
