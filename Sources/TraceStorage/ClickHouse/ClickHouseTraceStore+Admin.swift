extension ClickHouseTraceStore {
    /// Merges every table's parts now (`OPTIMIZE TABLE … FINAL`), so `stats()` reports the
    /// bytes a long-running server settles at. For benchmarks; ClickHouse merges by itself.
    public func optimize() async throws {
        try await ensureSchema()
        for table in schema.partitionedTables {
            try await client.execute("OPTIMIZE TABLE \(table)\(schema.onCluster) FINAL")
        }
    }

    /// Drops the whole database (benchmark and test clean-up).
    public func dropDatabase() async throws {
        try await client.execute("DROP DATABASE IF EXISTS \(configuration.database)\(schema.onCluster)", useDatabase: false)
        state.withLock { $0.schemaVersion = nil }
    }
}
