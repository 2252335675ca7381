import Instrumentation
import Synchronization
import TraceModel
import Tracing

/// A span started by `MeshtraceTracer`. Reference semantics, as swift-distributed-tracing
/// requires: every copy mutates the same span, under a lock, and it is reported once on `end()`.
///
/// Unsampled spans still carry ids (so the decision travels downstream in the headers) but
/// record nothing and are never exported.
public final class MeshtraceSpan: Tracing.Span, Sendable {
    /// This span's context: the caller's context plus this span's `TraceContext`.
    public let context: InstrumentationContext
    /// Trace id, span id, sampling decision: what `inject` writes for calls made inside this span.
    public let traceContext: TraceContext
    /// The span this one is a child of, or nil for a root span.
    public let parentSpanID: SpanID?
    public let kind: TraceModel.SpanKind
    /// Epoch nanoseconds.
    public let startTimeNanos: UInt64
    public let isRecording: Bool

    private struct State {
        var name: String
        var attributes: SpanAttributes = [:]
        var events: [TraceModel.SpanEvent] = []
        var links: [TraceModel.SpanLink] = []
        var status: TraceModel.SpanStatus = .unset
        var ended = false
    }

    private let state: Mutex<State>
    private let onEnd: @Sendable (MeshtraceSpan, TraceModel.Span) -> Void
    private let serviceName: String
    private let resource: [Attribute]

    init(
        name: String, context: InstrumentationContext, traceContext: TraceContext, parentSpanID: SpanID?,
        kind: TraceModel.SpanKind, startTimeNanos: UInt64, isRecording: Bool, serviceName: String,
        resource: [Attribute], onEnd: @escaping @Sendable (MeshtraceSpan, TraceModel.Span) -> Void
    ) {
        self.context = context
        self.traceContext = traceContext
        self.parentSpanID = parentSpanID
        self.kind = kind
        self.startTimeNanos = startTimeNanos
        self.isRecording = isRecording
        self.serviceName = serviceName
        self.resource = resource
        self.onEnd = onEnd
        self.state = Mutex(State(name: name))
    }

    public var operationName: String {
        get { state.withLock { $0.name } }
        set { state.withLock { $0.name = newValue } }
    }

    public var attributes: SpanAttributes {
        get { state.withLock { $0.attributes } }
        set {
            guard isRecording else { return }
            state.withLock { $0.attributes = newValue }
        }
    }

    /// OpenTelemetry's rule: once a span is marked OK, later statuses do not override it.
    public func setStatus(_ status: Tracing.SpanStatus) {
        guard isRecording else { return }
        let converted = TraceModel.SpanStatus(code: status.code == .ok ? .ok : .error, message: status.code == .ok ? nil : status.message)
        state.withLock { s in
            guard !s.ended, s.status.code != .ok else { return }
            s.status = converted
        }
    }

    public func addEvent(_ event: Tracing.SpanEvent) {
        guard isRecording else { return }
        let converted = TraceModel.SpanEvent(
            timeNanos: event.nanosecondsSinceEpoch, name: event.name, attributes: AttributeMapping.convert(event.attributes))
        state.withLock { s in
            guard !s.ended else { return }
            s.events.append(converted)
        }
    }

    /// An `exception` event (OpenTelemetry's semantic conventions) and an error status, unless
    /// the application already set one: an explicit status says more than a generic message.
    public func recordError<Instant: TracerInstant>(_ error: any Error, attributes: SpanAttributes, at instant: @autoclosure () -> Instant) {
        guard isRecording else { return }
        var eventAttributes = attributes
        eventAttributes.set("exception.type", value: .string(String(reflecting: type(of: error))))
        eventAttributes.set("exception.message", value: .string(String(describing: error)))
        let event = TraceModel.SpanEvent(
            timeNanos: instant().nanosecondsSinceEpoch, name: "exception", attributes: AttributeMapping.convert(eventAttributes))
        state.withLock { s in
            guard !s.ended else { return }
            s.events.append(event)
            if s.status.code == .unset { s.status = .error(String(describing: error)) }
        }
    }

    /// Links need a Meshtrace context to point at; a link to a context without one is dropped,
    /// since there is no span id to name.
    public func addLink(_ link: Tracing.SpanLink) {
        guard isRecording, let target = link.context.meshtraceTraceContext else { return }
        let converted = TraceModel.SpanLink(
            traceID: target.traceID, spanID: target.spanID, traceState: target.traceState,
            attributes: AttributeMapping.convert(link.attributes))
        state.withLock { s in
            guard !s.ended else { return }
            s.links.append(converted)
        }
    }

    /// Reports the span once; later calls are ignored (the protocol calls double-ending a bug,
    /// but a lost span is a worse outcome than a tolerated mistake).
    public func end<Instant: TracerInstant>(at instant: @autoclosure () -> Instant) {
        let endNanos = instant().nanosecondsSinceEpoch
        let finished: State? = state.withLock { s in
            guard !s.ended else { return nil }
            s.ended = true
            return s
        }
        guard let finished, isRecording else { return }
        let span = TraceModel.Span(
            traceID: traceContext.traceID,
            spanID: traceContext.spanID,
            parentSpanID: parentSpanID,
            kind: kind,
            name: finished.name,
            startTimeNanos: startTimeNanos,
            durationNanos: endNanos > startTimeNanos ? endNanos - startTimeNanos : 0,
            serviceName: serviceName,
            resource: resource,
            attributes: AttributeMapping.convert(finished.attributes),
            events: finished.events,
            links: finished.links,
            status: finished.status,
            traceState: traceContext.traceState,
            scope: MeshtraceTracer.instrumentationScope,
            debug: traceContext.debug
        )
        onEnd(self, span)
    }
}

/// swift-distributed-tracing's attribute values to the collector's model.
enum AttributeMapping {
    /// Sorted by key so exported spans are deterministic (tests, diffs, Zipkin tag order).
    static func convert(_ attributes: SpanAttributes) -> [Attribute] {
        var out: [Attribute] = []
        attributes.forEach { key, value in
            if let converted = convert(value) { out.append(Attribute(key, converted)) }
        }
        return out.sorted { $0.key < $1.key }
    }

    static func convert(_ value: SpanAttribute) -> AttributeValue? {
        switch value {
        case .int32(let v): return .int(Int64(v))
        case .int64(let v): return .int(v)
        case .int32Array(let v): return .array(v.map { .int(Int64($0)) })
        case .int64Array(let v): return .array(v.map { .int($0) })
        case .double(let v): return .double(v)
        case .doubleArray(let v): return .array(v.map { .double($0) })
        case .bool(let v): return .bool(v)
        case .boolArray(let v): return .array(v.map { .bool($0) })
        case .string(let v): return .string(v)
        case .stringArray(let v): return .array(v.map { .string($0) })
        case .stringConvertible(let v): return .string(v.description)
        case .stringConvertibleArray(let v): return .array(v.map { .string($0.description) })
        default: return nil  // the enum's placeholder case; future cases are skipped, not guessed at
        }
    }

    static func convert(_ kind: Tracing.SpanKind) -> TraceModel.SpanKind {
        switch kind {
        case .server: return .server
        case .client: return .client
        case .producer: return .producer
        case .consumer: return .consumer
        case .internal: return .internal
        }
    }
}
