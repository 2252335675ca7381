import TraceModel

/// Kiali-style service graph computed from spans: who called whom, how often, how many failed,
/// how slow (p95). Counts are estimates of true traffic: each span weighs `1 / sampling.rate`
/// (the attribute our sidecar records; absent or invalid = 1), so 10% sampling still shows the
/// real request rate.
///
/// Edges:
/// - a CLIENT (or PRODUCER) span paired with its SERVER (or CONSUMER) child in another span →
///   `client.service → server.service`, measured on the client (what the caller saw);
/// - a SERVER span whose parent is another non-client span → `parent.service → service`;
/// - a SERVER span with no parent in the data → `unknown → service`;
/// - a CLIENT span whose server never reported → `service → peer.service` (or the remote
///   endpoint), an external node unless that service reported spans of its own.
struct ServiceGraph: Sendable, Equatable {
    enum NodeType: String, Sendable {
        case service, gateway, unknown, external
    }

    /// Kiali's edge and node colours.
    enum Health: String, Sendable, Comparable {
        case idle, healthy, degraded, failure

        private var rank: Int {
            switch self {
            case .idle: return 0
            case .healthy: return 1
            case .degraded: return 2
            case .failure: return 3
            }
        }

        static func < (a: Health, b: Health) -> Bool { a.rank < b.rank }

        /// Kiali defaults (`AddHealthDefault`): any 5xx (or no response / gRPC error) is degraded and
        /// >= 10% is failure; 4xx is degraded at >= 10% and failure at >= 20%.
        static func of(requests: Double, errors5xx: Double, errors4xx: Double, errorsOther: Double) -> Health {
            guard requests > 0 else { return .idle }
            let serverSide = (errors5xx + errorsOther) / requests
            let clientSide = errors4xx / requests
            if serverSide >= 0.10 || clientSide >= 0.20 { return .failure }
            if serverSide > 0 || clientSide >= 0.10 { return .degraded }
            return .healthy
        }
    }

    /// Weighted request counts for one edge or node.
    struct Traffic: Sendable, Equatable {
        var requests: Double = 0
        var errors5xx: Double = 0
        var errors4xx: Double = 0
        /// Errors without an HTTP status: no response, gRPC codes 1–16, span status error.
        var errorsOther: Double = 0
        var spans = 0

        var errors: Double { errors5xx + errors4xx + errorsOther }
        var errorRate: Double { requests > 0 ? errors / requests : 0 }
        var health: Health {
            Health.of(requests: requests, errors5xx: errors5xx, errors4xx: errors4xx, errorsOther: errorsOther)
        }

        mutating func add(_ outcome: Outcome, weight: Double) {
            spans += 1
            requests += weight
            switch outcome {
            case .ok: break
            case .clientError: errors4xx += weight
            case .serverError: errors5xx += weight
            case .otherError: errorsOther += weight
            }
        }

        mutating func add(_ other: Traffic) {
            requests += other.requests
            errors5xx += other.errors5xx
            errors4xx += other.errors4xx
            errorsOther += other.errorsOther
            spans += other.spans
        }
    }

    struct Node: Sendable, Equatable {
        var id: String
        var type: NodeType
        /// Requests into this node (for roots such as the gateway: out of it).
        var traffic: Traffic
        /// 95th percentile of the requests into it (for roots: out of it), milliseconds.
        var p95Ms: Double = 0
        var traceIDs: [TraceID]
    }

    struct Edge: Sendable, Equatable {
        var source: String
        var target: String
        var protocolName: String
        var traffic: Traffic
        /// Weighted 95th percentile of the measured spans' durations, milliseconds.
        var p95Ms: Double
        var traceIDs: [TraceID]
    }

    enum Outcome: Sendable, Equatable {
        case ok, clientError, serverError, otherError
    }

    static let unknownNode = "unknown"
    /// Trace ids kept per node and edge, newest first, for "list its traces".
    static let maxTraceIDs = 20

    var nodes: [Node]
    var edges: [Edge]
    /// Spans the graph was built from (counted ones only, not the look-behind used to find parents).
    var spanCount: Int

    // MARK: Span reading

    /// The attribute tail sampling puts on the spans it keeps: how many requests each stands
    /// for (head sampling's `1 / sampling.rate` times tail sampling's own).
    static let adjustedCountKey = "sampling.adjusted_count"

    /// `sampling.adjusted_count` when it is at least 1; else `1 / sampling.rate`, when the rate
    /// is in (0, 1]; else 1.
    static func weight(of span: Span) -> Double {
        let adjusted: Double?
        switch span.attribute(adjustedCountKey) {
        case .double(let d): adjusted = d
        case .int(let i): adjusted = Double(i)
        case .string(let s): adjusted = Double(s)
        default: adjusted = nil
        }
        if let adjusted, adjusted.isFinite, adjusted >= 1 { return adjusted }
        let rate: Double?
        switch span.attribute("sampling.rate") {
        case .double(let d): rate = d
        case .int(let i): rate = Double(i)
        case .string(let s): rate = Double(s)
        default: rate = nil
        }
        guard let rate, rate.isFinite, rate > 0, rate <= 1 else { return 1 }
        return 1 / rate
    }

    static func statusCode(of span: Span) -> Int? {
        for key in ["http.response.status_code", "http.status_code"] {
            switch span.attribute(key) {
            case .int(let i): return Int(i)
            case .string(let s): if let i = Int(s) { return i }
            case .double(let d): return Int(d)
            default: continue
            }
        }
        return nil
    }

    static func outcome(of span: Span) -> Outcome {
        if let code = statusCode(of: span) {
            if code >= 500 { return .serverError }
            if code >= 400 { return .clientError }
            return span.status.code == .error ? .otherError : .ok
        }
        if let grpc = span.attribute("rpc.grpc.status_code").map({ Int($0.description) ?? 0 }), (1...16).contains(grpc) {
            return .otherError
        }
        return span.isError ? .otherError : .ok
    }

    static func protocolName(of span: Span) -> String {
        if case .string(let system)? = span.attribute("rpc.system") { return system == "grpc" ? "grpc" : system }
        if span.attribute("http.method") != nil || span.attribute("http.request.method") != nil
            || statusCode(of: span) != nil
        {
            return "http"
        }
        if case .string(let system)? = span.attribute("messaging.system") { return system }
        return "tcp"
    }

    static func isGateway(_ span: Span) -> Bool {
        span.resource.contains { $0.key == "meshtrace.proxy" && $0.value == .string("gateway") }
    }

    /// Where a client span went when no server span answered it.
    static func remoteName(of span: Span) -> String {
        if case .string(let peer)? = span.attribute("peer.service"), !peer.isEmpty { return peer }
        if let name = span.remoteEndpoint?.serviceName, !name.isEmpty { return name }
        for key in ["server.address", "net.peer.name", "upstream_cluster", "network.peer.address"] {
            if case .string(let v)? = span.attribute(key), !v.isEmpty, v != "-" { return v }
        }
        if let ip = span.remoteEndpoint?.ipv4 ?? span.remoteEndpoint?.ipv6 { return ip }
        return "external"
    }

    // MARK: Building

    struct EdgeKey: Hashable, Sendable {
        var source: String
        var target: String
    }

    /// One edge's totals, however they were gathered (from stored spans here, or from the
    /// pre-sampling aggregate, `REDAggregate`).
    struct EdgeTotals: Sendable {
        var traffic = Traffic()
        var protocols: [String: Int] = [:]
        var p95Ms: Double = 0
        var traces = TraceIDSample()

        mutating func add(_ m: Measurement) {
            traffic.add(m.outcome, weight: m.weight)
            protocols[m.protocolName, default: 0] += 1
            traces.add(m.traceID, at: m.startNanos)
        }
    }

    /// Newest-first distinct trace ids, capped.
    struct TraceIDSample: Sendable, Equatable {
        private(set) var newest: [(TraceID, UInt64)] = []

        mutating func add(_ id: TraceID, at time: UInt64) {
            if let i = newest.firstIndex(where: { $0.0 == id }) {
                if newest[i].1 < time { newest[i].1 = time }
                return
            }
            if newest.count >= ServiceGraph.maxTraceIDs * 4 { compact() }
            newest.append((id, time))
        }

        mutating func add(_ other: TraceIDSample) {
            for (id, time) in other.newest { add(id, at: time) }
        }

        private mutating func compact() {
            newest.sort { $0.1 > $1.1 }
            newest.removeLast(newest.count - ServiceGraph.maxTraceIDs)
        }

        var ids: [TraceID] {
            newest.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 > $1.0 }.prefix(ServiceGraph.maxTraceIDs).map(\.0)
        }

        static func == (a: TraceIDSample, b: TraceIDSample) -> Bool { a.ids == b.ids }
    }

    /// Weighted quantile: the smallest duration whose cumulative weight reaches `q` of the total.
    static func weightedQuantile(_ samples: [(ms: Double, weight: Double)], _ q: Double) -> Double {
        weightedQuantile(sorted: samples.sorted { $0.ms < $1.ms }, q)
    }

    /// The same on samples already sorted by duration (several quantiles of one sort).
    static func weightedQuantile(sorted: [(ms: Double, weight: Double)], _ q: Double) -> Double {
        let total = sorted.reduce(0) { $0 + $1.weight }
        var cumulative = 0.0
        for sample in sorted {
            cumulative += sample.weight
            if cumulative >= q * total - 1e-9 { return sample.ms }
        }
        return sorted.last?.ms ?? 0
    }

    /// - Parameters:
    ///   - spans: every span that may matter, including a look-behind before `countFrom` so that
    ///     parents of early spans are found; only spans starting at or after `countFrom` are counted.
    init(spans: [Span], countFrom: UInt64 = 0) {
        self.init(Self.measure(spans: spans, countFrom: countFrom))
    }

    /// Sums the measurements into nodes and edges (see `ServiceGraph+Measurements.swift`).
    init(_ measured: Measured) {
        var edges: [EdgeKey: EdgeTotals] = [:]
        var durations: [EdgeKey: [(ms: Double, weight: Double)]] = [:]
        for m in measured.measurements {
            let key = EdgeKey(source: m.source, target: m.target)
            edges[key, default: EdgeTotals()].add(m)
            durations[key, default: []].append((m.durationMs, m.weight))
        }
        var into: [String: [(ms: Double, weight: Double)]] = [:]
        var outOf: [String: [(ms: Double, weight: Double)]] = [:]
        for (key, samples) in durations {
            edges[key]?.p95Ms = Self.weightedQuantile(samples, 0.95)
            into[key.target, default: []] += samples
            outOf[key.source, default: []] += samples
        }
        var nodeP95: [String: Double] = [:]
        for (node, samples) in outOf { nodeP95[node] = Self.weightedQuantile(samples, 0.95) }
        for (node, samples) in into { nodeP95[node] = Self.weightedQuantile(samples, 0.95) }
        self.init(
            edges: edges, nodeP95Ms: nodeP95, reportingServices: measured.reportingServices,
            gatewayServices: measured.gatewayServices, spanCount: measured.measurements.count)
    }

    /// Nodes and edges from per-edge totals: a node's traffic is what flows into it (for roots
    /// such as the gateway, what flows out).
    init(
        edges: [EdgeKey: EdgeTotals], nodeP95Ms: [String: Double], reportingServices: Set<String>,
        gatewayServices: Set<String>, spanCount: Int
    ) {
        var inbound: [String: (Traffic, TraceIDSample)] = [:]
        var outbound: [String: (Traffic, TraceIDSample)] = [:]
        var nodeIDs = reportingServices
        for (key, totals) in edges {
            nodeIDs.insert(key.source)
            nodeIDs.insert(key.target)
            var intoNode = inbound[key.target] ?? (Traffic(), TraceIDSample())
            intoNode.0.add(totals.traffic)
            intoNode.1.add(totals.traces)
            inbound[key.target] = intoNode
            var out = outbound[key.source] ?? (Traffic(), TraceIDSample())
            out.0.add(totals.traffic)
            out.1.add(totals.traces)
            outbound[key.source] = out
        }
        self.nodes = nodeIDs.sorted().map { id in
            let type = Self.nodeType(id, reporting: reportingServices, gateways: gatewayServices)
            let (traffic, traces) = inbound[id] ?? outbound[id] ?? (Traffic(), TraceIDSample())
            return Node(id: id, type: type, traffic: traffic, p95Ms: nodeP95Ms[id] ?? 0, traceIDs: traces.ids)
        }
        self.edges = edges.sorted { ($0.key.source, $0.key.target) < ($1.key.source, $1.key.target) }.map { key, totals in
            let proto = totals.protocols.max { $0.value != $1.value ? $0.value < $1.value : $0.key > $1.key }?.key ?? "tcp"
            return Edge(
                source: key.source, target: key.target, protocolName: proto, traffic: totals.traffic,
                p95Ms: totals.p95Ms, traceIDs: totals.traces.ids)
        }
        self.spanCount = spanCount
    }

    static func nodeType(_ id: String, _ measured: Measured) -> NodeType {
        nodeType(id, reporting: measured.reportingServices, gateways: measured.gatewayServices)
    }

    static func nodeType(_ id: String, reporting: Set<String>, gateways: Set<String>) -> NodeType {
        if id == Self.unknownNode, !reporting.contains(id) { return .unknown }
        if gateways.contains(id) { return .gateway }
        if reporting.contains(id) { return .service }
        return .external
    }
}
