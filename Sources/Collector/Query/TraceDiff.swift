import TraceModel

/// Structural diff of two traces: both span trees merged on their (service, operation) paths from
/// the root, as Jaeger's trace comparison does. Each merged node counts the spans at that path in A
/// and in B, with their summed duration and errors, so a node is in both, only in A or only in B,
/// and the durations and counts can be compared. Nodes come in depth-first order, parents first.
struct TraceDiff: Sendable, Equatable {
    enum Presence: String, Sendable, Encodable {
        case both, onlyA, onlyB
    }

    struct Side: Sendable, Equatable, Encodable {
        var count = 0
        var durationNanos: UInt64 = 0
        var errors = 0
    }

    struct Node: Sendable, Equatable {
        var parent: Int?
        var depth: Int
        var service: String
        var operation: String
        var a: Side
        var b: Side

        var presence: Presence { a.count == 0 ? .onlyB : b.count == 0 ? .onlyA : .both }
    }

    var nodes: [Node]

    private struct SpanKey: Hashable {
        var trace: TraceID
        var span: SpanID
    }

    private struct PathKey: Hashable {
        var service: String
        var operation: String
    }

    /// One trace's spans as a tree: roots (no parent in the trace) and children by parent.
    private struct Tree {
        var roots: [Span] = []
        var children: [SpanKey: [Span]] = [:]
        var start: UInt64 = 0

        init(_ spans: [Span]) {
            var ids = Set<SpanKey>()
            for span in spans { ids.insert(SpanKey(trace: span.traceID, span: span.spanID)) }
            start = spans.map(\.startTimeNanos).min() ?? 0
            for span in spans {
                if let parent = span.parentSpanID, parent != span.spanID, ids.contains(SpanKey(trace: span.traceID, span: parent)) {
                    children[SpanKey(trace: span.traceID, span: parent), default: []].append(span)
                } else {
                    roots.append(span)
                }
            }
        }

        func children(of spans: [Span]) -> [Span] {
            spans.flatMap { children[SpanKey(trace: $0.traceID, span: $0.spanID)] ?? [] }
        }
    }

    private struct Work {
        var parent: Int?
        var depth: Int
        var key: PathKey
        var a: [Span]
        var b: [Span]
    }

    init(a: [Span], b: [Span]) {
        let treeA = Tree(a), treeB = Tree(b)
        var nodes: [Node] = []
        // Each span is merged once: a parent cycle in bad data cannot loop.
        var usedA = Set<SpanKey>(), usedB = Set<SpanKey>()

        func groups(parent: Int?, depth: Int, a: [Span], b: [Span]) -> [Work] {
            var byKey: [PathKey: Work] = [:]
            var first: [PathKey: UInt64] = [:]
            for span in a where usedA.insert(SpanKey(trace: span.traceID, span: span.spanID)).inserted {
                let key = PathKey(service: span.serviceName, operation: span.name)
                byKey[key, default: Work(parent: parent, depth: depth, key: key, a: [], b: [])].a.append(span)
                first[key] = min(first[key] ?? .max, span.startTimeNanos &- treeA.start)
            }
            for span in b where usedB.insert(SpanKey(trace: span.traceID, span: span.spanID)).inserted {
                let key = PathKey(service: span.serviceName, operation: span.name)
                byKey[key, default: Work(parent: parent, depth: depth, key: key, a: [], b: [])].b.append(span)
                first[key] = min(first[key] ?? .max, span.startTimeNanos &- treeB.start)
            }
            // Siblings in the order they start (offset from their trace's start), then by name.
            return byKey.values.sorted {
                let fa = first[$0.key] ?? 0, fb = first[$1.key] ?? 0
                return fa != fb ? fa < fb : ($0.key.service, $0.key.operation) < ($1.key.service, $1.key.operation)
            }
        }

        var stack = Array(groups(parent: nil, depth: 0, a: treeA.roots, b: treeB.roots).reversed())
        while let work = stack.popLast() {
            let index = nodes.count
            nodes.append(Node(
                parent: work.parent, depth: work.depth, service: work.key.service, operation: work.key.operation,
                a: Self.side(work.a), b: Self.side(work.b)))
            let next = groups(parent: index, depth: work.depth + 1, a: treeA.children(of: work.a), b: treeB.children(of: work.b))
            stack.append(contentsOf: next.reversed())
        }
        self.nodes = nodes
    }

    private static func side(_ spans: [Span]) -> Side {
        Side(count: spans.count, durationNanos: spans.reduce(0) { $0 &+ $1.durationNanos }, errors: spans.filter(\.isError).count)
    }
}
