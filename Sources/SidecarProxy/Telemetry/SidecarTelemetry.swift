import Logging
import NIOCore
import Synchronization
import TraceExport
import TraceModel
import TraceWire

/// The real `ProxyTelemetry`: Istio metrics for every request, a span for every sampled one,
/// exported in batches to the configured collector.
public final class SidecarTelemetry: ProxyTelemetry {
    public let metrics: IstioMetrics
    public let batcher: SpanBatcher?
    /// Swapped whole on a settings change; a class so reading it per request is one retain,
    /// not a copy of every string in the configuration.
    private final class BuilderBox: Sendable {
        let builder: HopSpanBuilder
        init(_ builder: HopSpanBuilder) { self.builder = builder }
    }
    private let builderBox: Mutex<BuilderBox>
    private let samplingPercent: @Sendable () -> Double
    private let exportTask = Mutex<Task<Void, Never>?>(nil)
    private let pending: PendingHops?
    /// In a pod: the namespace a bare outbound `Host` name resolves in.
    private let kubernetesNamespace: String?

    /// - Parameter samplingPercent: reads the rate in force (it can change at runtime), so
    ///   each span records the rate it was sampled at.
    public init(
        configuration: TelemetryConfiguration, exporter: (any SpanExporter)?, logger: Logger,
        samplingPercent: @escaping @Sendable () -> Double
    ) {
        let metrics = IstioMetrics(identity: configuration.identity)
        self.metrics = metrics
        kubernetesNamespace = configuration.identity.kubernetes ? configuration.identity.namespace : nil
        self.builderBox = Mutex(BuilderBox(HopSpanBuilder(configuration: configuration)))
        self.samplingPercent = samplingPercent
        if let exporter {
            let pending = PendingHops(capacity: configuration.maxQueuedSpans, onDropped: { metrics.spansDropped.increment(by: Int64($0)) })
            let batcher = SpanBatcher(
                exporter: exporter, capacity: configuration.maxQueuedSpans, maxBatch: configuration.maxBatchSpans,
                flushInterval: .milliseconds(Int(configuration.flushIntervalSeconds * 1000)), logger: logger,
                onExported: { metrics.spansExported.increment(by: Int64($0)) },
                onDropped: { metrics.spansDropped.increment(by: Int64($0)) },
                prepare: { pending.encode(into: $0) })
            self.batcher = batcher
            self.pending = pending
        } else {
            batcher = nil
            pending = nil
        }
    }

    /// Convenience: builds the exporter (HTTP, or OTLP/gRPC) from the configuration.
    public convenience init(configuration: TelemetryConfiguration, group: any EventLoopGroup, logger: Logger, samplingPercent: @escaping @Sendable () -> Double) {
        let exporter = configuration.exporter.makeExporter(group: group)
        self.init(configuration: configuration, exporter: exporter, logger: logger, samplingPercent: samplingPercent)
    }

    /// Starts the background export loop.
    public func start() {
        guard let batcher else { return }
        exportTask.withLock { task in
            if task == nil { task = Task { await batcher.run() } }
        }
    }

    /// How spans are named now: templates, and what the cardinality guard learned (proxy-config).
    public var naming: SpanNaming { builderBox.withLock { $0 }.builder.configuration.naming }

    /// Span naming and identity can change at runtime (the control plane pushes telemetry settings).
    public func update(configuration: TelemetryConfiguration) {
        builderBox.withLock { $0 = BuilderBox(HopSpanBuilder(configuration: configuration)) }
    }

    public func record(_ hop: consuming HopRecord) {
        var hop = hop
        if let kubernetesNamespace { Self.nameDestination(&hop, callerNamespace: kubernetesNamespace) }
        metrics.record(hop)
        guard hop.sampled, let batcher else { return }
        let box = builderBox.withLock { $0 }
        let rate = samplingPercent()
        guard hop.direction == .gateway else {
            // Encoded later by the export task, on its own thread: the span's ~30 tags cost a
            // fifth of the event loop's instructions per request when written here.
            pending?.add(PendingHops.Entry(hop: hop, samplingPercent: rate, builder: box))
            return
        }
        // A gateway reports the request twice, as Envoy gateways do (spawn_upstream_span):
        // a SERVER span for the edge request, with the CLIENT span to the route's service as its
        // child. Downstream services see only the client span id, so they hang off it.
        var client = box.builder.span(for: hop, samplingPercent: rate)
        var server = client
        server.kind = .server
        server.spanID = Self.edgeSpanID(for: hop.context.spanID)
        server.parentSpanID = hop.context.parentSpanID
        server.remoteEndpoint = hop.downstreamAddress.map { Endpoint(ipv4: HopSpanBuilder.host(of: $0), port: HopSpanBuilder.port(of: $0)) }
        server.attributes.removeAll { $0.key == "peer.service" || $0.key == "upstream_cluster" || $0.key == "upstream_cluster.name" }
        client.parentSpanID = server.spanID
        batcher.add(server)
        batcher.add(client)
    }

    /// Sampled hops waiting to be encoded, bounded like the batcher behind them (drops counted).
    private final class PendingHops: Sendable {
        struct Entry: Sendable {
            var hop: HopRecord
            var samplingPercent: Double
            var builder: BuilderBox
        }

        private let entries = Mutex<[Entry]>([])
        private let capacity: Int
        private let onDropped: @Sendable (Int) -> Void

        init(capacity: Int, onDropped: @escaping @Sendable (Int) -> Void) {
            self.capacity = max(1, capacity)
            self.onDropped = onDropped
        }

        func add(_ entry: Entry) {
            let accepted = entries.withLock { list -> Bool in
                guard list.count < capacity else { return false }
                list.append(entry)
                return true
            }
            if !accepted { onDropped(1) }
        }

        /// Encodes everything waiting into the batcher (the export task's `prepare`).
        func encode(into batcher: SpanBatcher) {
            let taken = entries.withLock { list -> [Entry] in
                defer { list = [] }
                return list
            }
            // Zipkin straight from the hop, no Span model in between, in one buffer reused for
            // every span; a full buffer counts the drop.
            switch batcher.format {
            case .zipkinJSON:
                var w = JSONWriter(capacity: 2048)
                for entry in taken {
                    w.removeAll()
                    entry.builder.builder.writeZipkin(entry.hop, samplingPercent: entry.samplingPercent, to: &w)
                    _ = w.withBytes { batcher.add(entry: $0) }
                }
            case .zipkinProto:
                let w = ProtoWriter(capacity: 2048)
                for entry in taken {
                    w.removeAll()
                    entry.builder.builder.writeZipkinProto(entry.hop, samplingPercent: entry.samplingPercent, to: w)
                    _ = w.withBytes { batcher.add(entry: $0) }
                }
            case .otlpProtobuf:
                for entry in taken { batcher.add(entry.builder.builder.span(for: entry.hop, samplingPercent: entry.samplingPercent)) }
            }
        }
    }

    /// A second id for the gateway's edge span, derived so it needs no extra state per request.
    static func edgeSpanID(for id: SpanID) -> SpanID {
        let z = SplitMix64.mix(id.value)
        return SpanID(z == id.value ? z ^ 1 : z) ?? id
    }

    /// In a pod, an outbound request names its destination by the Service's DNS name
    /// (`reviews.default.svc.cluster.local:9080`): spans and metrics call it `reviews`, in
    /// namespace `default`, as Istio's registry would.
    static func nameDestination(_ hop: inout HopRecord, callerNamespace: String) {
        guard hop.direction != .inbound, hop.destinationNamespace == nil,
              let name = KubernetesServiceName.parse(host: hop.destinationService, callerNamespace: callerNamespace)
        else { return }
        hop.destinationService = name.service
        if name.namespace != callerNamespace { hop.destinationNamespace = name.namespace }
    }

    public func tunnelOpened(_ hop: HopRecord) {
        var hop = hop
        if let kubernetesNamespace { Self.nameDestination(&hop, callerNamespace: kubernetesNamespace) }
        metrics.tunnelOpened(hop)
    }

    public func tunnelProgress(_ hop: HopRecord, sent: Int, received: Int) {
        var hop = hop
        if let kubernetesNamespace { Self.nameDestination(&hop, callerNamespace: kubernetesNamespace) }
        metrics.tunnelProgress(hop, sent: sent, received: received)
    }

    public func prometheusText() -> String { metrics.prometheusText() }

    public func flush() async {
        let task = exportTask.withLock { t -> Task<Void, Never>? in
            defer { t = nil }
            return t
        }
        task?.cancel()
        await task?.value
        await batcher?.flush()
    }
}
