import TraceModel

/// Calls between operations, Jaeger's deep dependency graph: a node per (service, operation) and
/// an edge from a span's operation to each child's, computed from the spans in a window. Counts are
/// weighted by `1 / sampling.rate` like the service graph's. With a focus, only the spans on call
/// paths through the focused operation count: its callers up to the root and everything it called.
struct OperationGraph: Sendable, Equatable {
    struct Key: Hashable, Comparable, Sendable {
        var service: String
        var operation: String

        static func < (a: Key, b: Key) -> Bool { (a.service, a.operation) < (b.service, b.operation) }
    }

    struct Node: Sendable, Equatable {
        var key: Key
        /// Each span of the operation is one request.
        var traffic: ServiceGraph.Traffic
        var p95Ms: Double
    }

    struct Edge: Sendable, Equatable {
        var source: Key
        var target: Key
        /// Measured on the callee's spans.
        var traffic: ServiceGraph.Traffic
    }

    var nodes: [Node]
    var edges: [Edge]
    var spanCount: Int

    private struct SpanKey: Hashable {
        var trace: TraceID
        var span: SpanID
    }

    private struct EdgeKey: Hashable {
        var source: Key
        var target: Key
    }

    /// - Parameters:
    ///   - spans: the window's spans plus a look-behind before `countFrom` to find parents.
    ///   - focus: keep only paths through this operation.
    init(spans: [Span], countFrom: UInt64 = 0, focus: Key? = nil) {
        var byID: [SpanKey: Span] = [:]
        byID.reserveCapacity(spans.count)
        for span in spans where byID[SpanKey(trace: span.traceID, span: span.spanID)] == nil || !span.shared {
            byID[SpanKey(trace: span.traceID, span: span.spanID)] = span
        }
        func parent(of span: Span) -> Span? {
            guard let id = span.parentSpanID, id != span.spanID else { return nil }
            return byID[SpanKey(trace: span.traceID, span: id)]
        }
        var kept: Set<SpanKey>? = nil
        if let focus {
            var children: [SpanKey: [Span]] = [:]
            for span in byID.values {
                if let p = parent(of: span) { children[SpanKey(trace: p.traceID, span: p.spanID), default: []].append(span) }
            }
            var keep = Set<SpanKey>()
            for span in byID.values where span.serviceName == focus.service && span.name == focus.operation {
                // Callers, up to the root (a visited set guards against parent cycles in bad data).
                keep.insert(SpanKey(trace: span.traceID, span: span.spanID))
                var up = parent(of: span)
                while let s = up, keep.insert(SpanKey(trace: s.traceID, span: s.spanID)).inserted { up = parent(of: s) }
                // Everything it called.
                var stack = children[SpanKey(trace: span.traceID, span: span.spanID)] ?? []
                while let s = stack.popLast() {
                    let key = SpanKey(trace: s.traceID, span: s.spanID)
                    guard keep.insert(key).inserted else { continue }
                    stack += children[key] ?? []
                }
            }
            kept = keep
        }

        var nodes: [Key: (ServiceGraph.Traffic, [(ms: Double, weight: Double)])] = [:]
        var edges: [EdgeKey: ServiceGraph.Traffic] = [:]
        var counted = 0
        for span in byID.values where span.startTimeNanos >= countFrom {
            let spanKey = SpanKey(trace: span.traceID, span: span.spanID)
            if let kept, !kept.contains(spanKey) { continue }
            counted += 1
            let key = Key(service: span.serviceName, operation: span.name)
            let weight = ServiceGraph.weight(of: span)
            let outcome = ServiceGraph.outcome(of: span)
            var node = nodes[key] ?? (ServiceGraph.Traffic(), [])
            node.0.add(outcome, weight: weight)
            node.1.append((Double(span.durationNanos) / 1e6, weight))
            nodes[key] = node
            if let p = parent(of: span), kept?.contains(SpanKey(trace: p.traceID, span: p.spanID)) ?? true {
                edges[EdgeKey(source: Key(service: p.serviceName, operation: p.name), target: key), default: ServiceGraph.Traffic()].add(outcome, weight: weight)
            }
        }
        // An edge's caller may have started before the window: it is still a node, without traffic.
        for edge in edges.keys where nodes[edge.source] == nil { nodes[edge.source] = (ServiceGraph.Traffic(), []) }
        self.nodes = nodes.sorted { $0.key < $1.key }.map {
            Node(key: $0.key, traffic: $0.value.0, p95Ms: ServiceGraph.weightedQuantile($0.value.1, 0.95))
        }
        self.edges = edges.sorted { $0.key.source != $1.key.source ? $0.key.source < $1.key.source : $0.key.target < $1.key.target }.map {
            Edge(source: $0.key.source, target: $0.key.target, traffic: $0.value)
        }
        self.spanCount = counted
    }
}
