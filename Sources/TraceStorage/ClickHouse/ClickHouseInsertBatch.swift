import TraceModel

/// One day's spans of a write, encoded as RowBinary for each table, with the block id that
/// makes its inserts idempotent and the key of one row per table to look the block up by
/// primary key (so the check after a failed insert reads a granule, not a partition).
struct ClickHouseInsertBatch: Sendable {
    struct Insert: Sendable {
        /// Table name as queries use it.
        var table: String
        var columns: String
        var rows: [UInt8]
        /// `WHERE` clause that finds this block's first row by primary key.
        var probe: String
    }

    let batchID: UInt64
    let day: UInt16
    let spanCount: Int
    /// In write order: trace bounds first, so get-trace never finds spans it cannot place;
    /// the search index last, so search never finds a trace whose spans are missing.
    let inserts: [Insert]

    static let indexColumns =
        "date, ts, start_ns, duration_ns, trace_hi, trace_lo, span_id, parent_id, service, name, kind, is_error, remote_service, tags.key, tags.value, terms, batch_id"
    static let dataColumns = "date, start_ns, trace_hi, trace_lo, span_id, payload, batch_id"
    static let boundsColumns = "date, trace_hi, trace_lo, start_ns, end_ns, batch_id"

    init(spans: [Span], day: UInt16, batchID: UInt64, schema: ClickHouseSchema) {
        self.batchID = batchID
        self.day = day
        self.spanCount = spans.count
        var index = RowBinaryWriter(capacity: spans.count * 400)
        var data = RowBinaryWriter(capacity: spans.count * 600)
        var bounds: [TraceID: (start: UInt64, end: UInt64)] = [:]
        var boundsOrder: [TraceID] = []
        for span in spans {
            let end = span.startTimeNanos &+ span.durationNanos
            if let b = bounds[span.traceID] {
                bounds[span.traceID] = (min(b.start, span.startTimeNanos), max(b.end, end))
            } else {
                bounds[span.traceID] = (span.startTimeNanos, end)
                boundsOrder.append(span.traceID)
            }
            Self.appendIndexRow(span, day: day, batchID: batchID, to: &index)
            data.uint16(day)
            data.uint64(span.startTimeNanos)
            data.uint64(span.traceID.high)
            data.uint64(span.traceID.low)
            data.uint64(span.spanID.value)
            data.blob(SpanRecordCodec.encode(span))
            data.uint64(batchID)
        }
        var boundRows = RowBinaryWriter(capacity: boundsOrder.count * 42)
        for id in boundsOrder {
            guard let b = bounds[id] else { continue }
            boundRows.uint16(day)
            boundRows.uint64(id.high)
            boundRows.uint64(id.low)
            boundRows.uint64(b.start)
            boundRows.uint64(b.end)
            boundRows.uint64(batchID)
        }
        let first = spans[0]
        let traceProbe = "date = \(ClickHouseSQL.dateLiteral(day)) AND trace_hi = \(first.traceID.high) AND trace_lo = \(first.traceID.low) AND batch_id = \(batchID)"
        let indexProbe = "date = \(ClickHouseSQL.dateLiteral(day)) AND service = \(ClickHouseSQL.literal(first.serviceName)) AND name = \(ClickHouseSQL.literal(first.name)) "
            + "AND ts = toDateTime(\(ClickHouseSQL.seconds(ofNanos: first.startTimeNanos))) AND batch_id = \(batchID)"
        inserts = [
            Insert(table: schema.traceBounds, columns: Self.boundsColumns, rows: boundRows.bytes, probe: traceProbe),
            Insert(table: schema.spansData, columns: Self.dataColumns, rows: data.bytes, probe: traceProbe),
            Insert(table: schema.spansIndex, columns: Self.indexColumns, rows: index.bytes, probe: indexProbe),
        ]
    }

    private static func appendIndexRow(_ span: Span, day: UInt16, batchID: UInt64, to w: inout RowBinaryWriter) {
        w.uint16(day)
        w.uint32(ClickHouseSQL.seconds(ofNanos: span.startTimeNanos))
        w.uint64(span.startTimeNanos)
        w.uint64(span.durationNanos)
        w.uint64(span.traceID.high)
        w.uint64(span.traceID.low)
        w.uint64(span.spanID.value)
        w.uint64(span.parentSpanID?.value ?? 0)
        w.string(span.serviceName)
        w.string(span.name)
        w.uint8(span.kind.rawValue)
        w.uint8(span.isError ? 1 : 0)
        w.string(SpanIndexing.remoteServiceName(of: span) ?? "")
        // Tags: the same (key, value description) pairs `SpanIndexing.hasTag` matches: span,
        // resource and event attributes.
        var keys: [String] = []
        var values: [String] = []
        func add(_ attributes: [Attribute]) {
            for a in attributes {
                keys.append(a.key)
                values.append(a.value.description)
            }
        }
        add(span.attributes)
        add(span.resource)
        for e in span.events { add(e.attributes) }
        w.strings(keys)
        w.strings(values)
        // Zipkin terms (`SpanIndexing.hasTerm`): event names, span and resource attribute keys.
        var terms = span.events.map(\.name)
        terms.append(contentsOf: span.attributes.map(\.key))
        terms.append(contentsOf: span.resource.map(\.key))
        w.strings(terms)
        w.uint64(batchID)
    }
}
