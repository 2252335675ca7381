import Foundation

extension ClickHouseTraceStore {
    /// Whole days before the cutoff's day are dropped as partitions (`ALTER TABLE … DROP
    /// PARTITION`: no rows rewritten, no TTL needed, so it works on 18.16). The collector's
    /// retention loop always passes a midnight (`retentionGranularityNanos`), so only that runs.
    /// A cutoff inside a day (an explicit call, the conformance tests) also deletes that day's
    /// older rows with an `ALTER TABLE … DELETE` mutation, waits for it, and rebuilds the day's
    /// `operations` rows from what is left.
    public func deleteSpans(startedBefore cutoff: UInt64) async throws -> Int {
        try checkOpen()
        try await ensureSchema()
        let cutDay = ClickHouseSQL.date(ofNanos: cutoff)
        var deleted = 0
        let old = try await client.rows(
            "SELECT toString(date), count() FROM \(schema.spansData) WHERE date < \(cutDay) GROUP BY date ORDER BY date")
        var days = Set(old.compactMap { $0.first })
        // A day may be left in a lookup or bounds table after its spans went (an insert cut short).
        for table in [schema.operations, schema.traceBounds, schema.spansIndex] {
            for row in try await client.rows("SELECT DISTINCT toString(date) FROM \(table) WHERE date < \(cutDay)") {
                if let d = row.first { days.insert(d) }
            }
        }
        for row in old { deleted += Int(row.last ?? "") ?? 0 }
        for day in days.sorted() {
            for table in schema.partitionedTables {
                try await client.execute("ALTER TABLE \(table)\(schema.onCluster) DROP PARTITION \(ClickHouseSQL.literal(day))")
            }
            logger.info("retention dropped a day", metadata: ["day": "\(day)"])
        }
        let partial = Int(
            try await client.rows("SELECT count() FROM \(schema.spansData) WHERE date = \(cutDay) AND start_ns < \(cutoff)").first?.first ?? "") ?? 0
        if partial > 0 {
            try await deleteWithinDay(cutDay, cutoff: cutoff)
            deleted += partial
        }
        return deleted
    }

    private func deleteWithinDay(_ day: String, cutoff: UInt64) async throws {
        let mutations = [
            (schema.local("spans_index"), "date = \(day) AND start_ns < \(cutoff)"),
            (schema.local("spans_data"), "date = \(day) AND start_ns < \(cutoff)"),
            (schema.local("trace_bounds"), "date = \(day) AND end_ns < \(cutoff)"),
        ]
        for (table, condition) in mutations {
            try await client.execute("ALTER TABLE \(table)\(schema.onCluster) DELETE WHERE \(condition)")
        }
        // Mutations run in the background (18.16 has no `mutations_sync`): wait for them.
        let deadline = ContinuousClock.now + .seconds(120)
        while true {
            let pending = try await client.rows(
                "SELECT count() FROM system.mutations WHERE database = \(ClickHouseSQL.literal(configuration.database)) AND is_done = 0")
            if pending.first?.first == "0" { break }
            guard ContinuousClock.now < deadline else { throw ClickHouseError.badResult("retention mutations still running after 120 s") }
            try await Task.sleep(for: .milliseconds(50))
        }
        // Rebuild the day's lookups. A write racing this adds its rows through the view after
        // the drop or is counted by the SELECT; either way nothing is lost (duplicates are read
        // with DISTINCT).
        try await client.execute("ALTER TABLE \(schema.local("operations"))\(schema.onCluster) DROP PARTITION \(day)")
        try await client.execute(
            """
            INSERT INTO \(schema.operations) SELECT date, service, name, kind, remote_service, count() FROM \(schema.spansIndex)
            WHERE date = \(day) GROUP BY date, service, name, kind, remote_service
            """, settings: insertSettings)
    }
}
