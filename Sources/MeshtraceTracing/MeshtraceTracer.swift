import Instrumentation
import Logging
import Synchronization
import TraceExport
import TraceModel
import Tracing

/// A swift-distributed-tracing `Tracer` (and so an `Instrument`) that speaks the same headers
/// as the Meshtrace sidecar (W3C `traceparent`/`tracestate`, B3 multi and single) and exports
/// finished spans to a Meshtrace (or any Zipkin/OTLP) collector, so application spans join
/// the sidecar's spans in one trace.
///
/// ```swift
/// let tracer = try MeshtraceTracing.bootstrap(serviceName: "backend")
/// try await withSpan("compute-report") { span in ... }
/// await tracer.shutdown()
/// ```
///
/// Spans are buffered in a bounded `SpanBatcher` and exported in the background once
/// `startExporting()` (or `MeshtraceTracing.bootstrap`) has started the export loop; when the
/// buffer is full new spans are dropped and counted, never blocking the request path.
public final class MeshtraceTracer: Tracer, Sendable {
    public typealias Span = MeshtraceSpan

    static let instrumentationScope = InstrumentationScope(name: "meshtrace-tracing", version: "1")

    public let serviceName: String
    /// Formats written by `inject`. Extraction always reads every format.
    public let formats: [PropagationFormat]
    public let sampler: Sampler

    /// nil when export is disabled: spans still propagate, nothing is sent.
    private let batcher: SpanBatcher?
    private let resource: [Attribute]
    private let exportTask = Mutex<Task<Void, Never>?>(nil)
    private let logger: Logger

    /// - Parameters:
    ///   - serviceName: reported as the spans' `service.name`; use the same name the sidecar
    ///     reports for this workload so the trace view groups them.
    ///   - exporter: where finished spans go (`HTTPSpanExporter`, or an in-memory one in
    ///     tests); nil disables export.
    ///   - formats: headers `inject` writes; the sidecar reads all of them.
    ///   - sampler: head sampling for new root spans; child spans follow their parent's decision.
    ///   - bufferCapacity: finished spans that may wait for export before new ones are dropped.
    public init(
        serviceName: String,
        exporter: (any SpanExporter)?,
        formats: [PropagationFormat] = [.w3c, .b3multi],
        sampler: Sampler = Sampler(percent: 100),
        resource: [Attribute] = [],
        bufferCapacity: Int = 8192,
        maxBatch: Int = 512,
        flushInterval: Duration = .seconds(1),
        logger: Logger = Logger(label: "meshtrace.tracing")
    ) {
        self.serviceName = serviceName
        self.formats = formats
        self.sampler = sampler
        self.logger = logger
        self.resource = [
            Attribute("telemetry.sdk.name", .string("meshtrace-tracing")),
            Attribute("telemetry.sdk.language", .string("swift")),
        ] + resource
        self.batcher = exporter.map {
            SpanBatcher(exporter: $0, capacity: bufferCapacity, maxBatch: maxBatch, flushInterval: flushInterval, logger: logger)
        }
    }

    // MARK: Export lifecycle

    /// Starts the background export loop (idempotent). Without it spans only leave on `flush()`.
    public func startExporting() {
        guard let batcher else { return }
        exportTask.withLock { task in
            guard task == nil else { return }
            task = Task { await batcher.run() }
        }
    }

    /// Exports every span that has ended so far, waiting for the collector's answer.
    public func flush() async {
        await batcher?.flush()
    }

    /// Stops the export loop and exports what is still buffered. Spans ended afterwards are
    /// buffered but only leave on another `flush()`.
    public func shutdown() async {
        let task = exportTask.withLock { task -> Task<Void, Never>? in
            defer { task = nil }
            return task
        }
        task?.cancel()
        await task?.value
        await flush()
    }

    /// Finished spans waiting for export.
    public var queuedSpans: Int { batcher?.queued ?? 0 }
    /// Spans lost to a full buffer or a failed export.
    public var droppedSpans: Int { batcher?.dropped ?? 0 }

    /// swift-distributed-tracing's synchronous flush request: starts an export without waiting
    /// (prefer `await flush()`, which does wait).
    public func forceFlush() {
        guard batcher != nil else { return }
        Task { await self.flush() }
    }

    // MARK: Tracer

    /// The new span's parent is the context's `meshtraceTraceContext` (an extracted remote
    /// caller or an enclosing span). Without one it starts a new trace with a fresh trace id,
    /// honouring a bare upstream sampling decision if the context carries one.
    public func startSpan<Instant: TracerInstant>(
        _ operationName: String,
        context: @autoclosure () -> InstrumentationContext,
        ofKind kind: Tracing.SpanKind,
        at instant: @autoclosure () -> Instant,
        function: String,
        file fileID: String,
        line: UInt
    ) -> MeshtraceSpan {
        var spanContext = context()
        let parent = spanContext.meshtraceTraceContext
        let spanID = SpanID.random()
        let traceContext: TraceContext
        if let parent {
            let sampled = sampler.decide(traceID: parent.traceID, upstream: parent.sampled, forced: parent.debug)
            traceContext = parent.child(spanID: spanID, sampled: sampled)
        } else {
            let traceID = TraceID.random()
            let decision = spanContext.meshtraceSamplingDecision
            let debug = decision?.debug ?? false
            let sampled = sampler.decide(traceID: traceID, upstream: decision?.sampled, forced: debug)
            // 128 random bits: W3C Level 2's random-trace-id flag goes with it.
            traceContext = TraceContext(traceID: traceID, spanID: spanID, sampled: sampled, debug: debug, randomTraceID: true)
        }
        spanContext.meshtraceTraceContext = traceContext
        spanContext.meshtraceSamplingDecision = nil
        let batcher = self.batcher
        return MeshtraceSpan(
            name: operationName, context: spanContext, traceContext: traceContext, parentSpanID: parent?.spanID,
            kind: AttributeMapping.convert(kind), startTimeNanos: instant().nanosecondsSinceEpoch,
            isRecording: traceContext.sampled == true, serviceName: serviceName, resource: resource,
            onEnd: { _, span in batcher?.add(span) })
    }

    // MARK: Instrument

    /// Reads W3C Trace Context and B3 (single and multi) from the carrier, with the sidecar's
    /// precedence (a valid `traceparent` wins). The extractor should look keys up
    /// case-insensitively, as HTTP header containers do. Invalid headers are ignored, so the
    /// next span starts a new trace rather than failing the request.
    public func extract<Carrier, Extract>(_ carrier: Carrier, into context: inout InstrumentationContext, using extractor: Extract)
    where Extract: Extractor, Extract.Carrier == Carrier {
        let incoming = TracePropagation.extract(ExtractorHeaders(carrier: carrier, extractor: extractor), readSW8: formats.contains(.sw8))
        if let remote = incoming.context {
            context.meshtraceTraceContext = remote
            context.meshtraceSamplingDecision = nil
        } else if incoming.sampled != nil || incoming.debug {
            context.meshtraceSamplingDecision = MeshtraceSamplingDecision(sampled: incoming.sampled ?? true, debug: incoming.debug)
        }
    }

    /// Writes the context's trace position in each of `formats`. An `Injector` can only add
    /// values, so callers should start from a carrier without stale trace headers.
    public func inject<Carrier, Inject>(_ context: InstrumentationContext, into carrier: inout Carrier, using injector: Inject)
    where Inject: Injector, Inject.Carrier == Carrier {
        guard let traceContext = context.meshtraceTraceContext else { return }
        var headers = HeaderList()
        // sw8 names the calling service; the endpoint is not known here (the span's name is not in
        // the context), so it is "/" as for a call made outside any request.
        let origin = formats.contains(.sw8)
            ? Sw8Propagation.Origin(service: serviceName, instance: serviceName, endpoint: "/", targetAddress: "-") : nil
        TracePropagation.inject(traceContext, formats: formats, sw8: origin, into: &headers)
        for field in headers.fields {
            injector.inject(field.value, forKey: field.name, into: &carrier)
        }
    }
}
