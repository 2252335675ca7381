import Logging
import ServiceLifecycle
import TraceStorage

/// Owns the store's lifetime: runs the single writer, retention and the store gauges, and on
/// graceful shutdown drains the queue before closing the store, so nothing acknowledged is lost.
/// It is first in the service group, so it stops last, after the listeners have finished
/// their in-flight requests.
struct IngestService: Service {
    let queue: IngestQueue
    let store: any TraceStore
    let metrics: CollectorMetrics
    let configuration: CollectorConfiguration
    let readiness: Readiness
    let logger: Logger

    func run() async throws {
        // Graceful shutdown and cancellation both end the same way: stop accepting, write what
        // is queued, then close. The writer is not cancellation-aware on its own (it waits for
        // work), so cancellation has to be turned into `shutdown()` explicitly.
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await maintain() }
                    group.addTask { await probeStore() }
                    await queue.run()  // returns only after shutdown() and a full drain
                    group.cancelAll()
                }
            } onGracefulShutdown: {
                logger.info("draining ingest queue", metadata: ["queued_spans": "\(queue.depthSpans)"])
                queue.shutdown()
            }
        } onCancel: {
            queue.shutdown()
        }
        try await store.close()
        logger.info("store closed")
    }

    /// `/readyz` and ingest follow the store's health each second, in a loop of its own: the
    /// housekeeping loop can wait out a stats or retention call to a store that went away.
    private func probeStore() async {
        while !Task.isCancelled {
            readiness.setStore(await store.isReady())
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Periodic housekeeping; sleeping here schedules work, it does not wait for other tasks.
    /// The loop wakes every second, or every retention interval when that is shorter.
    private func maintain() async {
        let retentionInterval = Duration.milliseconds(Int64(configuration.retentionIntervalSeconds * 1000))
        let tick = min(.seconds(1), retentionInterval)
        var lastRetention = ContinuousClock.now
        var lastStats = ContinuousClock.now - .seconds(60)
        while !Task.isCancelled {
            metrics.queueDepth.record(queue.depthSpans)
            let now = ContinuousClock.now
            if now - lastStats >= .seconds(5) {
                lastStats = now
                if let stats = try? await store.stats() {
                    metrics.storedSpans.record(stats.spanCount)
                    if let bytes = stats.bytesOnDisk { metrics.storeBytes.record(bytes) }
                }
            }
            if now - lastRetention >= retentionInterval {
                lastRetention = now
                await enforceRetention()
            }
            try? await Task.sleep(for: tick)
        }
    }

    private func enforceRetention() async {
        let cutoffSeconds = Double(WallClock.nowNanos()) / 1e9 - configuration.retentionSeconds
        guard cutoffSeconds > 0 else { return }
        // A store that deletes in whole units (ClickHouse: day partitions) gets a cutoff on a
        // unit boundary, so it keeps up to one unit more than asked and never rewrites rows.
        var cutoff = UInt64(cutoffSeconds * 1e9)
        let unit = store.retentionGranularityNanos
        if unit > 0 { cutoff -= cutoff % unit }
        do {
            let deleted = try await store.deleteSpans(startedBefore: cutoff)
            if deleted > 0 {
                metrics.retentionDeleted.increment(by: deleted)
                logger.info("retention deleted old spans", metadata: ["spans": "\(deleted)"])
            }
        } catch {
            logger.error("retention failed", metadata: ["error": "\(error)"])
        }
    }
}
