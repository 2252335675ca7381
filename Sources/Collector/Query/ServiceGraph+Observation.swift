import TraceModel

extension ServiceGraph {
    /// One request seen on an edge, measured on one span: what the graph adds up. Written once
    /// and used by both the graph over stored spans and the aggregate fed before sampling.
    struct Observation: Sendable {
        var source: String
        var target: String
        var weight: Double
        var outcome: Outcome
        var protocolName: String
        var durationMs: Double
        var traceID: TraceID
        var startNanos: UInt64

        init(source: String, target: String, measured span: Span) {
            self.source = source
            self.target = target
            weight = ServiceGraph.weight(of: span)
            outcome = ServiceGraph.outcome(of: span)
            protocolName = ServiceGraph.protocolName(of: span)
            durationMs = Double(span.durationNanos) / 1e6
            traceID = span.traceID
            startNanos = span.startTimeNanos
        }
    }

    struct ObservedServices: Sendable {
        var reportingServices = Set<String>()
        var gatewayServices = Set<String>()
        var counted = 0
    }

    private struct SpanKey: Hashable {
        var trace: TraceID
        var span: SpanID
    }

    /// The edges the spans show (see the type's comment for the rules), each reported through
    /// `record`; only spans starting at or after `countFrom` are counted, earlier ones only
    /// serve as parents.
    static func observe(spans: [Span], countFrom: UInt64 = 0, record: (Observation) -> Void) -> ObservedServices {
        var byID: [SpanKey: Span] = [:]
        var sharedClients: [SpanKey: Span] = [:]
        byID.reserveCapacity(spans.count)
        var services = ObservedServices()
        for span in spans {
            let key = SpanKey(trace: span.traceID, span: span.spanID)
            if span.kind == .client || span.kind == .producer { sharedClients[key] = span }
            // A Zipkin shared server span reuses its client's id: keep the client under the id.
            if span.shared, byID[key] != nil { continue }
            byID[key] = span
        }
        for span in spans where span.startTimeNanos >= countFrom {
            services.reportingServices.insert(span.serviceName)
            if isGateway(span) { services.gatewayServices.insert(span.serviceName) }
        }
        var answeredClients = Set<SpanKey>()
        // Server side first: pair with clients.
        for span in spans where span.kind == .server || span.kind == .consumer {
            let parent: Span?
            if span.shared {
                parent = sharedClients[SpanKey(trace: span.traceID, span: span.spanID)]
            } else if let parentID = span.parentSpanID {
                parent = byID[SpanKey(trace: span.traceID, span: parentID)]
            } else {
                parent = nil
            }
            if let parent, parent.kind == .client || parent.kind == .producer {
                answeredClients.insert(SpanKey(trace: parent.traceID, span: parent.spanID))
                if parent.startTimeNanos >= countFrom {
                    services.counted += 1
                    record(Observation(source: parent.serviceName, target: span.serviceName, measured: parent))
                }
            } else if span.startTimeNanos >= countFrom {
                services.counted += 1
                let source = (parent?.serviceName).flatMap { $0 == span.serviceName ? nil : $0 } ?? unknownNode
                record(Observation(source: source, target: span.serviceName, measured: span))
            }
        }
        // Clients nobody answered: external (or silent) destinations.
        for span in spans where (span.kind == .client || span.kind == .producer) && span.startTimeNanos >= countFrom {
            guard !answeredClients.contains(SpanKey(trace: span.traceID, span: span.spanID)) else { continue }
            services.counted += 1
            record(Observation(source: span.serviceName, target: remoteName(of: span), measured: span))
        }
        return services
    }
}
