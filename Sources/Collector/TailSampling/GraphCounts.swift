import TraceModel

/// The service graph's numbers before they become nodes and edges: per edge the traffic, the
/// protocols, a latency histogram and recent trace ids, plus which services reported. Built
/// from measurements (`ServiceGraph.measure`), added together across time buckets, and from
/// stored spans for the part of a window the pre-sampling aggregate did not see.
struct GraphCounts: Sendable {
    struct Cell: Sendable {
        var totals = ServiceGraph.EdgeTotals()
        var histogram = LatencyHistogram()

        mutating func add(_ other: Cell) {
            totals.traffic.add(other.totals.traffic)
            totals.traces.add(other.totals.traces)
            for (name, n) in other.totals.protocols { totals.protocols[name, default: 0] += n }
            histogram.add(other.histogram)
        }
    }

    var edges: [ServiceGraph.EdgeKey: Cell] = [:]
    var reporting = Set<String>()
    var gateways = Set<String>()
    var counted = 0

    mutating func add(_ measurement: ServiceGraph.Measurement) {
        let key = ServiceGraph.EdgeKey(source: measurement.source, target: measurement.target)
        edges[key, default: Cell()].totals.add(measurement)
        edges[key, default: Cell()].histogram.record(ms: measurement.durationMs, weight: measurement.weight)
        counted += 1
    }

    mutating func add(_ other: GraphCounts) {
        reporting.formUnion(other.reporting)
        gateways.formUnion(other.gateways)
        counted += other.counted
        for (key, cell) in other.edges { edges[key, default: Cell()].add(cell) }
    }

    /// From stored spans: what starts in `[from, before)` counts (each span weighted by its
    /// adjusted count); earlier spans only serve as parents.
    static func stored(_ spans: [Span], from: UInt64, before: UInt64) -> GraphCounts {
        var counts = GraphCounts()
        for measurement in ServiceGraph.measure(spans: spans, countFrom: from).measurements
        where measurement.startNanos < before {
            counts.add(measurement)
        }
        for span in spans where span.startTimeNanos >= from && span.startTimeNanos < before {
            counts.reporting.insert(span.serviceName)
            if ServiceGraph.isGateway(span) { counts.gateways.insert(span.serviceName) }
        }
        return counts
    }

    func graph() -> ServiceGraph {
        var into: [String: LatencyHistogram] = [:]
        var outOf: [String: LatencyHistogram] = [:]
        var totals: [ServiceGraph.EdgeKey: ServiceGraph.EdgeTotals] = [:]
        for (key, cell) in edges {
            var t = cell.totals
            t.p95Ms = cell.histogram.quantile(0.95)
            totals[key] = t
            into[key.target, default: LatencyHistogram()].add(cell.histogram)
            outOf[key.source, default: LatencyHistogram()].add(cell.histogram)
        }
        var nodeP95: [String: Double] = [:]
        for (node, h) in outOf { nodeP95[node] = h.quantile(0.95) }
        for (node, h) in into { nodeP95[node] = h.quantile(0.95) }
        return ServiceGraph(edges: totals, nodeP95Ms: nodeP95, reportingServices: reporting, gatewayServices: gateways, spanCount: counted)
    }
}
