import Logging
import Synchronization
import TraceModel

/// A bounded buffer between the request path and the exporter. `add` never blocks and never
/// grows past `capacity`: when the collector is slow or down, new spans are dropped and
/// counted rather than slowing application traffic or eating memory.
public final class SpanBatcher: Sendable {
    private struct State {
        var buffer: [Span] = []
        var dropped = 0
    }

    private let state = Mutex(State())
    let capacity: Int
    let maxBatch: Int
    let flushInterval: Duration
    let exporter: any SpanExporter
    let logger: Logger
    let onExported: @Sendable (Int) -> Void
    let onDropped: @Sendable (Int) -> Void

    public init(
        exporter: any SpanExporter, capacity: Int, maxBatch: Int, flushInterval: Duration, logger: Logger,
        onExported: @escaping @Sendable (Int) -> Void = { _ in }, onDropped: @escaping @Sendable (Int) -> Void = { _ in }
    ) {
        self.exporter = exporter
        self.capacity = max(1, capacity)
        self.maxBatch = max(1, maxBatch)
        self.flushInterval = flushInterval
        self.logger = logger
        self.onExported = onExported
        self.onDropped = onDropped
    }

    /// Returns false (and counts a drop) when the buffer is full.
    @discardableResult
    public func add(_ span: Span) -> Bool {
        let accepted = state.withLock { s -> Bool in
            guard s.buffer.count < capacity else {
                s.dropped += 1
                return false
            }
            s.buffer.append(span)
            return true
        }
        if !accepted { onDropped(1) }
        return accepted
    }

    public var queued: Int { state.withLock { $0.buffer.count } }
    public var dropped: Int { state.withLock { $0.dropped } }

    private func take(_ n: Int) -> [Span] {
        state.withLock { s in
            let batch = Array(s.buffer.prefix(n))
            s.buffer.removeFirst(batch.count)
            return batch
        }
    }

    /// The export loop: a batch leaves when it is full or `flushInterval` has passed.
    /// Sleeping here paces the loop; it does not stand in for waiting on another task.
    public func run() async {
        var lastFlush = ContinuousClock.now
        while !Task.isCancelled {
            if queued >= maxBatch || (queued > 0 && ContinuousClock.now - lastFlush >= flushInterval) {
                lastFlush = ContinuousClock.now
                await exportWithRetry(take(maxBatch), attempts: 5)
                continue
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Exports everything still buffered (shutdown path), with fewer retries.
    public func flush() async {
        while queued > 0 {
            await exportWithRetry(take(maxBatch), attempts: 2)
        }
    }

    /// Exponential backoff with jitter, honouring Retry-After, as OTLP clients should.
    func exportWithRetry(_ batch: [Span], attempts: Int) async {
        guard !batch.isEmpty else { return }
        var delay = 0.1
        for attempt in 1...attempts {
            switch await exporter.export(batch) {
            case .exported:
                onExported(batch.count)
                return
            case .rejected(let reason):
                logger.warning("collector rejected spans; dropping batch", metadata: ["spans": "\(batch.count)", "reason": "\(reason)"])
                drop(batch.count)
                return
            case .retryable(let reason, let retryAfter):
                guard attempt < attempts, !Task.isCancelled else {
                    logger.warning("export failed; dropping batch", metadata: ["spans": "\(batch.count)", "reason": "\(reason)"])
                    drop(batch.count)
                    return
                }
                let wait = min(30, retryAfter ?? delay * Double.random(in: 0.8...1.2))
                delay = min(5, delay * 2)
                try? await Task.sleep(for: .milliseconds(Int(wait * 1000)))
            }
        }
    }

    private func drop(_ n: Int) {
        state.withLock { $0.dropped += n }
        onDropped(n)
    }
}
