import Hummingbird
import Synchronization

/// Liveness and readiness as a load balancer or `meshtrace up` would probe them: every
/// listener bound and the store usable (ClickHouse reachable, probed each second).
public final class Readiness: Sendable {
    private struct State {
        var listening = false
        var storeReady = false
    }
    private let state = Mutex(State())
    public init() {}
    public var isReady: Bool { state.withLock { $0.listening && $0.storeReady } }
    /// The store answered its last probe; ingest answers 503 at once while it did not.
    public var isStoreReady: Bool { state.withLock { $0.storeReady } }
    func set(_ ready: Bool) { state.withLock { $0.listening = ready } }
    func setStore(_ ready: Bool) { state.withLock { $0.storeReady = ready } }
}

/// The admin port: Prometheus `/metrics`, `/healthz` (process up) and `/readyz` (store open and
/// reachable, every listener bound, not shutting down).
struct AdminAPI: Sendable {
    let metrics: CollectorMetrics
    let readiness: Readiness

    func register(on router: Router<BasicRequestContext>) {
        router.get("/metrics") { _, _ in
            Response.bytes(Array(self.metrics.prometheusText().utf8), contentType: "text/plain; version=0.0.4; charset=utf-8")
        }
        router.get("/healthz") { _, _ in Response.text("ok\n", status: .ok) }
        router.get("/readyz") { _, _ in
            self.readiness.isReady ? Response.text("ready\n", status: .ok) : Response.text("not ready\n", status: .serviceUnavailable)
        }
    }
}
