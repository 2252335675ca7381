import TraceModel

/// The seam between the data plane and telemetry (spans, export, Istio metrics).
/// `record` is called on the request path, usually on an event loop: it must not block. It takes
/// the record (`consuming`), so keeping it for later moves it rather than copying its strings.
public protocol ProxyTelemetry: Sendable {
    func record(_ hop: consuming HopRecord)
    /// A CONNECT tunnel is open (its hop is recorded when it closes): Istio counts TCP
    /// connections when they open.
    func tunnelOpened(_ hop: HopRecord)
    /// Bytes an open tunnel carried since its last report: Istio reports TCP traffic every few
    /// seconds (`tcp_reporting_duration`), not only when the connection closes.
    func tunnelProgress(_ hop: HopRecord, sent: Int, received: Int)
    /// Prometheus text for `/stats/prometheus`.
    func prometheusText() -> String
    /// Exports everything buffered; called on shutdown after in-flight requests drained.
    func flush() async
}

extension ProxyTelemetry {
    public func tunnelOpened(_ hop: HopRecord) {}
    public func tunnelProgress(_ hop: HopRecord, sent: Int, received: Int) {}
}
