import Hummingbird
import TraceModel
import TraceStorage

/// `GET /api/meshtrace/graph/series?lookback=5m&node=N` (or `&from=A&to=B`)`[&points=30][&endTs=<ms>]`:
/// one node's or edge's rate, error rate and latency over the window, for the graph's side-panel
/// sparklines. Built from the graph's own measurements, so the series sums to what the graph shows.
extension GraphAPI {
    struct SeriesBody: Encodable {
        var lookbackMs: UInt64
        var endTs: Int64
        var stepMs: UInt64
        var summary: REDSeries.Point
        var series: [REDSeries.Point]
    }

    func series(_ params: QueryParameters) async throws -> SeriesBody {
        let window = try QueryWindow(params, defaultLookbackNanos: 5 * 60 * 1_000_000_000)
        let step = try QueryWindow.stepNanos(params, lookbackNanos: window.lookbackNanos)
        let spans = try await store.spans(startNanos: window.readFromNanos, endNanos: window.endNanos, limit: maxSpans)
        let measured = ServiceGraph.measure(spans: spans, countFrom: window.startNanos)
        let chosen: [ServiceGraph.Measurement]
        if let node = params.string("node") {
            chosen = ServiceGraph.nodeMeasurements(node, in: measured)
        } else if let from = params.string("from"), let to = params.string("to") {
            chosen = measured.measurements.filter { $0.source == from && $0.target == to }
        } else {
            throw HTTPFailure.badRequest("give 'node', or 'from' and 'to' (an edge)")
        }
        var red = REDSeries(startNanos: window.startNanos, endNanos: window.endNanos, stepNanos: step)
        for m in chosen { red.add(m) }
        return SeriesBody(
            lookbackMs: window.lookbackNanos / 1_000_000, endTs: window.endMs, stepMs: step / 1_000_000,
            summary: red.summary, series: red.points)
    }
}
