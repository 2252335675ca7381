import TraceModel

/// Port of Zipkin's `DependencyLinker.java` (zipkin2.internal) with error counts.
///
/// Per trace: build the span tree, walk it breadth-first, and for each remote span:
/// - a CLIENT span with children is skipped (the server child carries the link); a leaf CLIENT links to its remote service;
/// - a span without a Zipkin kind (INTERNAL/UNSPECIFIED) but with local and remote service names counts as CLIENT;
/// - SERVER/CONSUMER: child = local service, parent = remote service (the root SERVER with unknown caller is skipped);
///   CLIENT/PRODUCER: parent = local service, child = remote service;
/// - PRODUCER/CONSUMER link only when both sides are known (no ancestor walk);
/// - otherwise the first ancestor with a kind supplies the parent for SERVER spans (or when the parent is unknown),
///   and a CLIENT whose service differs from that ancestor's service backfills an ancestor → client link;
/// - a span is an error when `Span.isError`; a SERVER whose direct parent is the CLIENT ancestor inherits its error.
///
/// The remote service of a span is `remoteEndpoint.serviceName`, else the `peer.service` attribute.
public enum DependencyLinker {
    public static func link(trace: [Span]) -> [DependencyLink] {
        guard !trace.isEmpty else { return [] }
        var counter = Counter()
        let tree = Tree(trace)
        for index in tree.breadthFirst() {
            let span = tree.spans[index]
            var kind = zipkinKind(span.kind)
            if kind == .client && !tree.children[index].isEmpty { continue }
            let service = localServiceName(span)
            let remote = SpanIndexing.remoteServiceName(of: span)
            if kind == nil {
                if service != nil && remote != nil { kind = .client } else { continue }
            }
            var parent: String?
            var child: String?
            switch kind! {
            case .server, .consumer:
                child = service
                parent = remote
                if index == tree.root && parent == nil { continue }
            case .client, .producer:
                parent = service
                child = remote
            default:
                continue
            }
            var isError = span.isError
            if kind == .producer || kind == .consumer {
                if let parent, let child { counter.add(parent, child, isError) }
                continue
            }
            if let ancestorIndex = tree.firstRemoteAncestor(of: index) {
                let ancestor = tree.spans[ancestorIndex]
                if let ancestorName = localServiceName(ancestor) {
                    if kind == .client, let service, ancestorName != service {
                        counter.add(ancestorName, service, false)
                    }
                    if kind == .server || parent == nil { parent = ancestorName }
                    if !isError && ancestor.kind == .client && span.parentSpanID == ancestor.spanID {
                        isError = ancestor.isError
                    }
                }
            }
            guard let parent, let child else { continue }
            counter.add(parent, child, isError)
        }
        return counter.links
    }

    /// Sums links with the same (parent, child); sorted by parent then child.
    public static func merge(_ links: [DependencyLink]) -> [DependencyLink] {
        var counter = Counter()
        for l in links { counter.add(l.parent, l.child, calls: l.callCount, errors: l.errorCount) }
        return counter.links
    }

    static func zipkinKind(_ kind: SpanKind) -> SpanKind? {
        switch kind {
        case .server, .client, .producer, .consumer: return kind
        case .internal, .unspecified: return nil
        }
    }

    static func localServiceName(_ span: Span) -> String? {
        if !span.serviceName.isEmpty { return span.serviceName }
        if let s = span.localEndpoint?.serviceName, !s.isEmpty { return s }
        return nil
    }

    struct Counter {
        private struct Key: Hashable {
            var parent: String
            var child: String
        }
        private var counts: [Key: (calls: Int, errors: Int)] = [:]

        mutating func add(_ parent: String, _ child: String, _ isError: Bool) {
            add(parent, child, calls: 1, errors: isError ? 1 : 0)
        }

        mutating func add(_ parent: String, _ child: String, calls: Int, errors: Int) {
            let key = Key(parent: parent, child: child)
            let old = counts[key] ?? (0, 0)
            counts[key] = (old.calls + calls, old.errors + errors)
        }

        var links: [DependencyLink] {
            counts.map { DependencyLink(parent: $0.key.parent, child: $0.key.child, callCount: $0.value.calls, errorCount: $0.value.errors) }
                .sorted { ($0.parent, $0.child) < ($1.parent, $1.child) }
        }
    }

    /// Zipkin's SpanNode tree: shared (server) spans hang under the client span with the same id;
    /// spans whose parent is missing hang under the root (the earliest parentless span), or under a
    /// synthetic root when there is none.
    struct Tree {
        let spans: [Span]
        var parent: [Int?]
        var children: [[Int]]
        /// Index of the real root span, or nil when the root is synthetic.
        var root: Int?
        var topLevel: [Int] = []

        init(_ input: [Span]) {
            // De-duplicate (same id, shared flag and service), keeping the first occurrence.
            struct NodeKey: Hashable {
                var id: UInt64
                var shared: Bool
                var service: String
            }
            var seen = Set<NodeKey>()
            var unique: [Span] = []
            for s in SpanIndexing.sortedByStart(input)
            where seen.insert(NodeKey(id: s.spanID.value, shared: s.shared, service: s.serviceName)).inserted {
                unique.append(s)
            }
            spans = unique
            parent = Array(repeating: nil, count: unique.count)
            children = Array(repeating: [], count: unique.count)

            var nonShared: [UInt64: Int] = [:]
            var shared: [UInt64: [Int]] = [:]
            for (i, s) in unique.enumerated() {
                if s.shared { shared[s.spanID.value, default: []].append(i) } else if nonShared[s.spanID.value] == nil {
                    nonShared[s.spanID.value] = i
                }
            }
            var orphans: [Int] = []
            for (i, s) in unique.enumerated() {
                var p: Int?
                if s.shared {
                    p = nonShared[s.spanID.value]
                    if p == nil, let pid = s.parentSpanID?.value { p = nonShared[pid] }
                } else if let pid = s.parentSpanID?.value {
                    if let candidates = shared[pid] {
                        p = candidates.first { unique[$0].serviceName == s.serviceName } ?? nonShared[pid] ?? candidates.first
                    } else {
                        p = nonShared[pid]
                    }
                }
                if let p, p != i {
                    parent[i] = p
                } else {
                    orphans.append(i)
                }
            }
            // Root: the earliest span that has no parent id (spans are sorted by start).
            root = orphans.first { unique[$0].parentSpanID == nil && !unique[$0].shared }
            for i in orphans where i != root {
                if let root {
                    parent[i] = root
                } else {
                    topLevel.append(i)
                }
            }
            for i in unique.indices { if let p = parent[i] { children[p].append(i) } }
            if let root { topLevel.insert(root, at: 0) }
            // Breadth-first order. Nodes not reached sit on a parent cycle (corrupt data): detach and visit them.
            let kids = children
            var visited = Array(repeating: false, count: unique.count)
            var queue: [Int] = []
            queue.reserveCapacity(unique.count)
            var head = 0
            func visit(_ start: Int) {
                visited[start] = true
                queue.append(start)
                while head < queue.count {
                    let i = queue[head]
                    head += 1
                    for c in kids[i] where !visited[c] {
                        visited[c] = true
                        queue.append(c)
                    }
                }
            }
            for t in topLevel where !visited[t] { visit(t) }
            for i in unique.indices where !visited[i] {
                if let p = parent[i] { children[p].removeAll { $0 == i } }
                parent[i] = nil
                topLevel.append(i)
                visit(i)
            }
            order = queue
        }

        var order: [Int] = []

        func breadthFirst() -> [Int] { order }

        func firstRemoteAncestor(of index: Int) -> Int? {
            var cursor = parent[index]
            while let c = cursor {
                if DependencyLinker.zipkinKind(spans[c].kind) != nil { return c }
                cursor = parent[c]
            }
            return nil
        }
    }
}
