import Logging
import Synchronization
import TraceModel

/// A bounded buffer between the request path and the exporter. `add` never blocks and never
/// grows past `capacity` spans: when the collector is slow or down, new spans are dropped and
/// counted rather than slowing application traffic or eating memory.
///
/// Spans enter already encoded in the exporter's wire format (`SpanWireFormat`), straight into
/// the batch being filled, so what waits here is a few large byte arrays, and the export task
/// has nothing left to do but send.
public final class SpanBatcher: Sendable {
    private struct State {
        var filling: EncodedSpanBatch
        /// Batches that reached `maxBatch`, oldest first.
        var full: [EncodedSpanBatch] = []
        /// Spans in `filling` and `full`.
        var queued = 0
        var dropped = 0
    }

    private let state: Mutex<State>
    let capacity: Int
    let maxBatch: Int
    let flushInterval: Duration
    let exporter: any SpanExporter
    public let format: SpanWireFormat
    let logger: Logger
    let onExported: @Sendable (Int) -> Void
    let onDropped: @Sendable (Int) -> Void
    let prepare: @Sendable (SpanBatcher) -> Void

    /// - Parameter prepare: called by the export loop before it looks for a batch, and before a
    ///   flush: a producer that hands over work unencoded adds its spans here, on the export
    ///   task's thread instead of the request path.
    public init(
        exporter: any SpanExporter, capacity: Int, maxBatch: Int, flushInterval: Duration, logger: Logger,
        onExported: @escaping @Sendable (Int) -> Void = { _ in }, onDropped: @escaping @Sendable (Int) -> Void = { _ in },
        prepare: @escaping @Sendable (SpanBatcher) -> Void = { _ in }
    ) {
        self.exporter = exporter
        self.format = exporter.format
        self.capacity = max(1, capacity)
        self.maxBatch = max(1, maxBatch)
        self.flushInterval = flushInterval
        self.logger = logger
        self.onExported = onExported
        self.onDropped = onDropped
        self.prepare = prepare
        self.state = Mutex(State(filling: EncodedSpanBatch(format: exporter.format)))
    }

    /// Encodes `span` in the exporter's format and queues it. Returns false (and counts a
    /// drop) when the buffer is full.
    @discardableResult
    public func add(_ span: Span) -> Bool {
        add(entry: format.encode(span))
    }

    /// Queues one span already encoded as a `format` entry (a producer that writes the wire
    /// format directly). Returns false (and counts a drop) when the buffer is full.
    @discardableResult
    public func add(entry: [UInt8]) -> Bool {
        entry.withUnsafeBytes { add(entry: $0) }
    }

    /// `add(entry:)` from bytes lent by the producer (a writer it reuses for every span).
    @discardableResult
    public func add(entry: UnsafeRawBufferPointer) -> Bool {
        let maxBatch = self.maxBatch
        let accepted = state.withLock { s -> Bool in
            guard s.queued < capacity else {
                s.dropped += 1
                return false
            }
            s.filling.append(entry: entry)
            s.queued += 1
            if s.filling.spanCount >= maxBatch { Self.seal(&s) }
            return true
        }
        if !accepted { onDropped(1) }
        return accepted
    }

    public var queued: Int { state.withLock { $0.queued } }
    public var dropped: Int { state.withLock { $0.dropped } }
    var fullBatches: Int { state.withLock { $0.full.count } }

    /// Moves the batch being filled to the full list.
    private static func seal(_ s: inout State) {
        // Swapped out before it is closed: closing it while `filling` still shared its bytes would
        // copy the whole batch. The next one reserves this one's size.
        var batch = EncodedSpanBatch(format: s.filling.format, reservingCapacity: s.filling.body.count + 1)
        swap(&batch, &s.filling)
        batch.close()
        s.full.append(batch)
    }

    /// The oldest full batch, or (with `partial`) whatever is being filled.
    private func take(partial: Bool) -> EncodedSpanBatch? {
        state.withLock { s in
            if s.full.isEmpty {
                guard partial, s.filling.spanCount > 0 else { return nil }
                Self.seal(&s)
            }
            let batch = s.full.removeFirst()
            s.queued -= batch.spanCount
            return batch
        }
    }

    /// How long the export loop keeps retrying one batch before dropping it. A collector that
    /// restarts, or stalls on a slow disk, comes back within this; a buffer that fills meanwhile
    /// drops (and counts) new spans instead, so the wait never reaches application traffic.
    public static let retryBudget = Duration.seconds(30)
    /// How long a shutdown flush retries, over all its batches: a stop must not hang on a
    /// collector that is gone.
    public static let flushRetryBudget = Duration.seconds(2)

    /// The export loop: a batch leaves when it is full or `flushInterval` has passed.
    /// Sleeping here paces the loop; it does not stand in for waiting on another task.
    public func run() async {
        var lastFlush = ContinuousClock.now
        while !Task.isCancelled {
            prepare(self)
            let due = ContinuousClock.now - lastFlush >= flushInterval
            if let batch = take(partial: due) {
                lastFlush = ContinuousClock.now
                if await exportWithRetry(batch, until: .now + Self.retryBudget) == .interrupted {
                    putBack(batch)
                }
                continue
            }
            if due { lastFlush = ContinuousClock.now }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Exports everything still buffered (shutdown path). Retries share one short budget, so a
    /// collector that is gone costs one failed attempt per batch once it runs out.
    public func flush() async {
        prepare(self)
        let giveUp = ContinuousClock.now + Self.flushRetryBudget
        while let batch = take(partial: true) {
            await exportWithRetry(batch, until: giveUp, interruptible: false)
        }
    }

    enum RetryEnd: Equatable { case exported, dropped, interrupted }

    /// Exponential backoff with jitter (0.1 s doubling to 5 s), honouring Retry-After, as OTLP
    /// clients should, until `giveUp`. An `interruptible` export stops when its task is
    /// cancelled and leaves the batch to the caller, so a shutdown flush still sends it.
    @discardableResult
    func exportWithRetry(
        _ batch: EncodedSpanBatch, until giveUp: ContinuousClock.Instant, interruptible: Bool = true
    ) async -> RetryEnd {
        guard batch.spanCount > 0 else { return .exported }
        var delay = 0.1
        var attempts = 0
        while true {
            attempts += 1
            switch await exporter.export(batch) {
            case .exported:
                onExported(batch.spanCount)
                return .exported
            case .rejected(let reason):
                logger.warning("collector rejected spans; dropping batch", metadata: ["spans": "\(batch.spanCount)", "reason": "\(reason)"])
                drop(batch.spanCount)
                return .dropped
            case .retryable(let reason, let retryAfter):
                if interruptible && Task.isCancelled { return .interrupted }
                let wait = Duration.milliseconds(Int(min(30, retryAfter ?? delay * Double.random(in: 0.8...1.2)) * 1000))
                guard ContinuousClock.now + wait < giveUp else {
                    logger.warning("export failed; dropping batch", metadata: [
                        "spans": "\(batch.spanCount)", "attempts": "\(attempts)", "reason": "\(reason)"])
                    drop(batch.spanCount)
                    return .dropped
                }
                if attempts == 1 {
                    logger.info("export failed; retrying", metadata: ["spans": "\(batch.spanCount)", "reason": "\(reason)"])
                }
                delay = min(5, delay * 2)
                try? await Task.sleep(for: wait)
                if interruptible && Task.isCancelled { return .interrupted }
            }
        }
    }

    /// Returns a batch whose export was interrupted to the front of the queue.
    private func putBack(_ batch: EncodedSpanBatch) {
        state.withLock { s in
            s.full.insert(batch, at: 0)
            s.queued += batch.spanCount
        }
    }

    private func drop(_ n: Int) {
        state.withLock { $0.dropped += n }
        onDropped(n)
    }
}
