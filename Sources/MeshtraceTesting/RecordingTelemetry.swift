import SidecarProxy
import Synchronization

/// Keeps every `HopRecord` a sidecar reports, for tests to read back: the proxy's telemetry
/// port, with no spans or metrics behind it.
public final class RecordingTelemetry: ProxyTelemetry {
    private let hops = Mutex<[HopRecord]>([])
    private let flushes = Mutex(0)
    private let tunnels = Mutex(0)
    private let progress = Mutex((sent: 0, received: 0, reports: 0))

    public init() {}

    public func record(_ hop: consuming HopRecord) {
        let hop = hop
        hops.withLock { $0.append(hop) }
    }

    public func tunnelOpened(_ hop: HopRecord) {
        tunnels.withLock { $0 += 1 }
    }

    public func tunnelProgress(_ hop: HopRecord, sent: Int, received: Int) {
        progress.withLock { $0 = ($0.sent + sent, $0.received + received, $0.reports + 1) }
    }

    /// The sums of every `tunnelProgress` report, and how many there were.
    public var tunnelProgressReported: (sent: Int, received: Int, reports: Int) { progress.withLock { $0 } }
    public var recorded: [HopRecord] { hops.withLock { $0 } }
    public var tunnelsOpened: Int { tunnels.withLock { $0 } }
    public var flushCount: Int { flushes.withLock { $0 } }

    public func reset() { hops.withLock { $0.removeAll() } }

    /// A count, so a test of the metrics port has something to read.
    public func prometheusText() -> String {
        let count = hops.withLock { $0.count }
        return "# TYPE meshtrace_sidecar_hops_recorded_total counter\nmeshtrace_sidecar_hops_recorded_total \(count)\n"
    }

    public func flush() async {
        flushes.withLock { $0 += 1 }
    }
}
