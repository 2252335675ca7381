import TraceModel

/// Jaeger's critical path: the parts of spans that, if shortened, would shorten the trace.
public enum CriticalPath {
    /// One stretch of one span on the critical path, in epoch nanoseconds.
    public struct Section: Sendable, Equatable, Codable {
        public var spanID: String
        public var service: String
        public var name: String
        public var startNanos: UInt64
        public var endNanos: UInt64

        public var durationNanos: UInt64 { endNanos - startNanos }
    }

    /// Jaeger's rule (packages/jaeger-ui/src/components/TracePage/CriticalPath): start at the
    /// root; walk down to the child that finishes last, then back up to the parent before that
    /// child started, and so on. Children are first clipped to their parent (clock skew and
    /// async work must not stretch the path), children that start after the parent ended are
    /// dropped. Sections come back ordered by start time. Iterative, so deep traces are safe.
    public static func compute(trace: [Span]) -> [Section] {
        guard !trace.isEmpty else { return [] }
        // Index: one span per id (the CLIENT side of a Zipkin shared pair wins), children per parent.
        var byID: [SpanID: Span] = [:]
        for span in trace where byID[span.spanID] == nil || span.kind == .client { byID[span.spanID] = span }
        // The root: no parent, or a parent that is missing; the earliest such span, ties by length.
        let roots = trace.filter { $0.parentSpanID.flatMap { byID[$0] } == nil }
        guard let root = roots.min(by: { ($0.startTimeNanos, UInt64.max - $0.durationNanos) < ($1.startTimeNanos, UInt64.max - $1.durationNanos) }) else { return [] }

        struct Node {
            var span: Span
            var start: UInt64
            var end: UInt64
            var children: [SpanID] = []
        }
        // Clip breadth-first from the root, so each child is clipped to its already-clipped parent.
        var childrenOf: [SpanID: [Span]] = [:]
        for span in byID.values {
            if let p = span.parentSpanID, p != span.spanID, byID[p] != nil { childrenOf[p, default: []].append(span) }
        }
        var nodes: [SpanID: Node] = [root.spanID: Node(span: root, start: root.startTimeNanos, end: root.endTimeNanos)]
        var parentOf: [SpanID: SpanID] = [:]
        var queue = [root.spanID]
        var head = 0
        while head < queue.count {
            let id = queue[head]
            head += 1
            guard let parent = nodes[id] else { continue }
            var kept: [(SpanID, UInt64)] = []
            for child in childrenOf[id] ?? [] where nodes[child.spanID] == nil {
                // Starts after the parent ended: not on this parent's path at all.
                if child.startTimeNanos >= parent.end { continue }
                let start = max(child.startTimeNanos, parent.start)
                let end = min(child.endTimeNanos, parent.end)
                guard end >= start else { continue }
                nodes[child.spanID] = Node(span: child, start: start, end: end)
                parentOf[child.spanID] = id
                kept.append((child.spanID, end))
                queue.append(child.spanID)
            }
            // Last-finishing first.
            nodes[id]?.children = kept.sorted { $0.1 > $1.1 }.map(\.0)
        }

        var sections: [Section] = []
        func push(_ node: Node, _ start: UInt64, _ end: UInt64) {
            guard end > start else { return }
            sections.append(Section(spanID: node.span.spanID.hex, service: node.span.serviceName, name: node.span.name, startNanos: start, endNanos: end))
        }
        // (span, the start time of the child we came back from, or nil when entering from above)
        var current = root.spanID
        var returningChildStart: UInt64? = nil
        var guardSteps = 4 * nodes.count + 4
        while guardSteps > 0, let node = nodes[current] {
            guardSteps -= 1
            let until = returningChildStart ?? node.end
            let next = node.children.first { id in
                guard let c = nodes[id] else { return false }
                return returningChildStart.map { c.end < $0 } ?? true  // Jaeger: strictly before
            }
            if let next, let child = nodes[next] {
                push(node, child.end, until)
                current = next
                returningChildStart = nil
            } else {
                push(node, node.start, until)
                guard let parent = parentOf[current] else { break }
                returningChildStart = node.start
                current = parent
            }
        }
        return sections.sorted { $0.startNanos < $1.startNanos }
    }
}

/// The critical path as the API serves it and the CLI reads it (microseconds, as Jaeger's API
/// uses): one type on both sides so they cannot drift apart.
public struct CriticalPathReport: Codable, Sendable, Equatable {
    public struct Section: Codable, Sendable, Equatable {
        public var spanID: String
        public var service: String
        public var name: String
        public var startMicros: UInt64
        public var endMicros: UInt64
    }

    public var traceID: String
    public var totalMicros: UInt64
    public var sections: [Section]

    public init(traceID: String, sections: [CriticalPath.Section]) {
        self.traceID = traceID
        self.totalMicros = sections.reduce(0) { $0 + $1.durationNanos / 1_000 }
        self.sections = sections.map {
            Section(spanID: $0.spanID, service: $0.service, name: $0.name, startMicros: $0.startNanos / 1_000, endMicros: $0.endNanos / 1_000)
        }
    }
}
