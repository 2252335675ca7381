import Synchronization
import TraceExport
import TraceModel

/// Keeps exported spans in memory instead of sending them, for tests to read back what a tracer
/// produced. Batches travel as OTLP protobuf, which keeps attribute types, so the spans read
/// back as they were made.
public final class InMemorySpanExporter: SpanExporter {
    private let received = Mutex<[Span]>([])

    public init() {}

    public var format: SpanWireFormat { .otlpProtobuf }

    /// Every span exported so far, in order.
    public var exported: [Span] { received.withLock { $0 } }

    public func export(_ batch: EncodedSpanBatch) async -> ExportOutcome {
        guard let decoded = try? batch.decode() else { return .rejected(reason: "undecodable batch") }
        received.withLock { $0.append(contentsOf: decoded) }
        return .exported
    }
}
