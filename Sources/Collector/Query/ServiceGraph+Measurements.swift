import TraceModel

/// The first half of building the graph: every request the graph counts, as one measurement with
/// its edge, time, weight and outcome. The graph sums them; the side panel's sparklines and the
/// monitor page bucket the same measurements over time, so their numbers agree with the graph's.
extension ServiceGraph {
    /// One request on one edge, measured on the span that saw it (the client when there is one).
    struct Measurement: Sendable, Equatable {
        var source: String
        var target: String
        var protocolName: String
        var traceID: TraceID
        var startNanos: UInt64
        var durationMs: Double
        /// `1 / sampling.rate`: how many real requests this span stands for.
        var weight: Double
        var outcome: Outcome
    }

    struct Measured: Sendable, Equatable {
        var measurements: [Measurement] = []
        /// Services that reported spans in the counted window.
        var reportingServices = Set<String>()
        var gatewayServices = Set<String>()
    }

    private struct SpanKey: Hashable {
        var trace: TraceID
        var span: SpanID
    }

    /// - Parameters:
    ///   - spans: every span that may matter, including a look-behind before `countFrom` so that
    ///     parents of early spans are found; only spans starting at or after `countFrom` are counted.
    static func measure(spans: [Span], countFrom: UInt64 = 0) -> Measured {
        var byID: [SpanKey: Span] = [:]
        var sharedClients: [SpanKey: Span] = [:]
        byID.reserveCapacity(spans.count)
        var out = Measured()
        for span in spans {
            let key = SpanKey(trace: span.traceID, span: span.spanID)
            if span.kind == .client || span.kind == .producer { sharedClients[key] = span }
            // A Zipkin shared server span reuses its client's id: keep the client under the id.
            if span.shared, byID[key] != nil { continue }
            byID[key] = span
        }
        for span in spans where span.startTimeNanos >= countFrom {
            out.reportingServices.insert(span.serviceName)
            if isGateway(span) { out.gatewayServices.insert(span.serviceName) }
        }

        func record(_ source: String, _ target: String, measured span: Span) {
            out.measurements.append(Measurement(
                source: source, target: target, protocolName: protocolName(of: span), traceID: span.traceID,
                startNanos: span.startTimeNanos, durationMs: Double(span.durationNanos) / 1e6,
                weight: weight(of: span), outcome: outcome(of: span)))
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
                if parent.startTimeNanos >= countFrom { record(parent.serviceName, span.serviceName, measured: parent) }
            } else if span.startTimeNanos >= countFrom {
                let source = (parent?.serviceName).flatMap { $0 == span.serviceName ? nil : $0 } ?? unknownNode
                record(source, span.serviceName, measured: span)
            }
        }
        // Clients nobody answered: external (or silent) destinations.
        for span in spans where (span.kind == .client || span.kind == .producer) && span.startTimeNanos >= countFrom {
            guard !answeredClients.contains(SpanKey(trace: span.traceID, span: span.spanID)) else { continue }
            record(span.serviceName, remoteName(of: span), measured: span)
        }
        return out
    }

    /// The measurements a node's traffic is made of, as `init(_:)` sums them: requests into it,
    /// or for a node nobody calls (a gateway, a cron job) the requests out of it.
    static func nodeMeasurements(_ node: String, in measured: Measured) -> [Measurement] {
        let inbound = measured.measurements.filter { $0.target == node }
        return inbound.isEmpty ? measured.measurements.filter { $0.source == node } : inbound
    }
}
