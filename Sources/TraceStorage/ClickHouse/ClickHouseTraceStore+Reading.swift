import Foundation
import TraceModel

extension ClickHouseTraceStore {
    /// Rows of `sql ... FORMAT RowBinary`, read by `row` until the result ends.
    func select<T>(_ sql: String, _ row: (inout RowBinaryReader) throws -> T) async throws -> [T] {
        try checkOpen()
        try await ensureSchema()
        var reader = RowBinaryReader(try await client.execute(sql + " FORMAT RowBinary", settings: readSettings))
        var out: [T] = []
        while !reader.atEnd { out.append(try row(&reader)) }
        return out
    }

    static func decode(_ payload: ArraySlice<UInt8>) throws -> Span {
        do {
            return try payload.withUnsafeBytes { try SpanRecordCodec.decode(buffer: $0) }
        } catch {
            throw TraceStoreError.corruptRecord(String(describing: error))
        }
    }

    static func idTuple(_ id: TraceID) -> String { "(\(id.high), \(id.low))" }

    // MARK: Traces by id

    public func trace(id: TraceID) async throws -> [Span] {
        try await traces(ids: [id]).first ?? []
    }

    public func traces(ids: [TraceID]) async throws -> [[Span]] {
        guard !ids.isEmpty else { return [] }
        var found: [TraceID: [Span]] = [:]
        // Chunks keep the statement small; 500 ids is one search page several times over.
        for start in stride(from: 0, to: ids.count, by: 500) {
            let chunk = Set(ids[start..<min(start + 500, ids.count)])
            let list = chunk.map(Self.idTuple).joined(separator: ", ")
            // `trace_bounds` names the days that hold these traces: only those partitions are read.
            let sql = """
                SELECT trace_hi, trace_lo, payload FROM \(schema.spansData)
                WHERE date IN (SELECT date FROM \(schema.traceBounds) WHERE (trace_hi, trace_lo) IN (\(list)))
                  AND (trace_hi, trace_lo) IN (\(list))
                ORDER BY trace_hi, trace_lo, start_ns, span_id
                """
            let rows = try await select(sql) { r in (TraceID(high: try r.uint64(), low: try r.uint64()), try r.blob()) }
            for (id, payload) in rows { found[id, default: []].append(try Self.decode(payload)) }
        }
        return ids.map { found[$0] ?? [] }
    }

    // MARK: Search

    public func findTraceIDs(_ query: TraceQuery) async throws -> [TraceID] {
        guard query.limit > 0, query.startTimeMinNanos <= query.startTimeMaxNanos else { return [] }
        guard configuration.narrowsSearch else { return try await findTraceIDs(query, from: query.startTimeMinNanos) }
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        for lower in SearchWindows.lowerBounds(min: query.startTimeMinNanos, max: query.startTimeMaxNanos, now: now) {
            let ids = try await findTraceIDs(query, from: lower)
            if ids.count >= query.limit || lower == query.startTimeMinNanos { return ids }
        }
        return []
    }

    /// The query's newest traces among spans that start in `[lower, query.startTimeMaxNanos]`.
    private func findTraceIDs(_ query: TraceQuery, from lower: UInt64) async throws -> [TraceID] {
        let q = ClickHouseSQL.literal
        var conditions = ClickHouseSQL.keyRange(lower, query.startTimeMaxNanos, ts: true)
        conditions += ["start_ns >= \(lower)", "start_ns <= \(query.startTimeMaxNanos)"]
        if let s = query.serviceName { conditions.append("service = \(q(s))") }
        if let n = query.operationName { conditions.append("name = \(q(n))") }
        if let k = query.spanKind { conditions.append("kind = \(k.rawValue)") }
        if let r = query.remoteServiceName { conditions.append("remote_service = \(q(r))") }
        if let m = query.minDurationNanos { conditions.append("duration_ns >= \(m)") }
        if let m = query.maxDurationNanos { conditions.append("duration_ns <= \(m)") }
        // Same rules as `SpanIndexing.hasTag` / `hasTerm`, on one span.
        for (key, value) in query.tags.sorted(by: { $0.key < $1.key }) {
            let pair = "arrayExists((k, v) -> k = \(q(key)) AND v = \(q(value)), tags.key, tags.value)"
            conditions.append(key == "error" && value == "true" ? "(is_error = 1 OR \(pair))" : pair)
        }
        for term in query.annotationTerms { conditions.append("has(terms, \(q(term)))") }
        let sql = """
            SELECT trace_hi, trace_lo, max(start_ns) AS newest FROM \(schema.spansIndex)
            WHERE \(conditions.joined(separator: " AND "))
            GROUP BY trace_hi, trace_lo ORDER BY newest DESC, trace_hi DESC, trace_lo DESC LIMIT \(query.limit)
            """
        return try await select(sql) { r in
            let id = TraceID(high: try r.uint64(), low: try r.uint64())
            _ = try r.uint64()
            return id
        }
    }

    // MARK: Lookups

    public func serviceNames() async throws -> [String] {
        try await select("SELECT DISTINCT service FROM \(schema.operations) ORDER BY service") { try $0.string() }
    }

    public func operations(service: String, kind: SpanKind?) async throws -> [Operation] {
        var sql = "SELECT DISTINCT name, kind FROM \(schema.operations) WHERE service = \(ClickHouseSQL.literal(service))"
        if let kind { sql += " AND kind = \(kind.rawValue)" }
        sql += " ORDER BY name, kind"
        return try await select(sql) { r in (try r.string(), try r.uint8()) }.compactMap { name, kind in
            SpanKind(rawValue: kind).map { Operation(name: name, kind: $0) }
        }
    }

    public func remoteServiceNames(service: String) async throws -> [String] {
        try await select(
            "SELECT DISTINCT remote_service FROM \(schema.operations) WHERE service = \(ClickHouseSQL.literal(service)) "
                + "AND remote_service != '' ORDER BY remote_service"
        ) { try $0.string() }
    }

    // MARK: Windows

    public func dependencies(startNanos: UInt64, endNanos: UInt64) async throws -> [DependencyLink] {
        guard startNanos <= endNanos else { return [] }
        let ids = try await select(
            "SELECT DISTINCT trace_hi, trace_lo FROM \(schema.spansIndex) WHERE \(window(startNanos, endNanos, ts: true))"
        ) { r in TraceID(high: try r.uint64(), low: try r.uint64()) }
        var links: [DependencyLink] = []
        for trace in try await traces(ids: ids) { links.append(contentsOf: DependencyLinker.link(trace: trace)) }
        return DependencyLinker.merge(links)
    }

    public func spans(startNanos: UInt64, endNanos: UInt64, limit: Int) async throws -> [Span] {
        guard limit > 0, startNanos <= endNanos else { return [] }
        let payloads = try await select(
            "SELECT payload FROM \(schema.spansData) WHERE \(window(startNanos, endNanos, ts: false)) ORDER BY start_ns DESC LIMIT \(limit)"
        ) { try $0.blob() }
        var spans: [Span] = []
        for payload in payloads {
            do {
                spans.append(try Self.decode(payload))
            } catch {
                logger.warning("skipping undecodable span", metadata: ["error": "\(error)"])
            }
        }
        return spans.sorted(by: SpanIndexing.newestFirst)
    }

    /// Day partitions, then exact nanoseconds (and the `DateTime` key column where the table has it).
    func window(_ start: UInt64, _ end: UInt64, ts: Bool) -> String {
        let c = ClickHouseSQL.keyRange(start, end, ts: ts).joined(separator: " AND ")
        return c + " AND start_ns >= \(start) AND start_ns <= \(end)"
    }
}
