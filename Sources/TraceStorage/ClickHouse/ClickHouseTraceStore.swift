import Logging
import Synchronization
import TraceModel

/// Spans in ClickHouse over its HTTP interface (`ClickHouseSchema` has the tables).
///
/// The store needs no ClickHouse to be created: the schema is made (or migrated) on first use
/// and retried from `isReady()`, so a collector started before ClickHouse comes up reports not
/// ready and catches up. Several collectors may share one database; each keeps no state of
/// its own beyond a cache of "schema ready".
///
/// A write returns once ClickHouse has acknowledged every row (`insert_distributed_sync=1` in
/// cluster mode, so the shards hold them). A failed insert is retried until
/// `writeRetrySeconds` with the same block id and query id: first it waits while ClickHouse still
/// runs the first attempt, then checks by primary key whether the block landed, and sends it
/// again only if not, so a retry never stores a block twice.
public final class ClickHouseTraceStore: TraceStore {
    let configuration: ClickHouseConfiguration
    let schema: ClickHouseSchema
    let client: ClickHouseHTTPClient
    let logger: Logger
    private let closed = Atomic<Bool>(false)
    let state = Mutex(HealthState())

    struct HealthState {
        var schemaVersion: Int?
        var serverVersion: String?
        var lastReady: Bool?
    }

    /// Retention runs whole days: the collector rounds its cutoff down to midnight (UTC), so
    /// only `DROP PARTITION` runs, never a row-rewriting mutation.
    public var retentionGranularityNanos: UInt64 { 86_400_000_000_000 }

    public init(configuration: ClickHouseConfiguration, logger: Logger) throws {
        if let problem = configuration.validationError() { throw TraceStoreError.invalidConfiguration(problem) }
        self.configuration = configuration
        self.schema = ClickHouseSchema(database: configuration.database, cluster: configuration.cluster)
        self.client = ClickHouseHTTPClient(configuration: configuration, logger: logger)
        self.logger = logger
    }

    func checkOpen() throws {
        if closed.load(ordering: .acquiring) { throw TraceStoreError.closed }
    }

    /// Settings on every statement: in cluster mode inserts wait for the shards, and a read's
    /// `IN (subquery)` on co-sharded tables runs against each shard's local table.
    var readSettings: [String: String] { configuration.cluster == nil ? [:] : ["distributed_product_mode": "local"] }
    var insertSettings: [String: String] { configuration.cluster == nil ? [:] : ["insert_distributed_sync": "1"] }

    // MARK: Schema and health

    /// Creates or migrates the schema once; cheap after that.
    func ensureSchema() async throws {
        if state.withLock({ $0.schemaVersion }) != nil { return }
        let version = String(decoding: try await client.execute("SELECT version()", useDatabase: false), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        try await client.execute(schema.createDatabase, useDatabase: false)
        try await client.execute(schema.createVersionTable)
        let stored = Int(try await client.rows("SELECT max(version) FROM \(schema.versionTable)").first?.first ?? "") ?? 0
        for migration in schema.migrations() where migration.version > stored {
            for statement in migration.statements { try await client.execute(statement) }
            try await client.execute("INSERT INTO \(schema.versionTable) (version) VALUES (\(migration.version))")
            logger.info("clickhouse schema migrated", metadata: ["version": "\(migration.version)", "database": "\(configuration.database)"])
        }
        let current = max(stored, ClickHouseSchema.currentVersion)
        state.withLock {
            $0.schemaVersion = current
            $0.serverVersion = version
        }
        logger.info(
            "clickhouse store ready",
            metadata: ["server_version": "\(version)", "schema_version": "\(current)", "database": "\(configuration.database)",
                       "cluster": "\(configuration.cluster ?? "-")"])
    }

    /// ClickHouse answers `/ping` and the schema is in place. Logs each change.
    public func isReady() async -> Bool {
        guard !closed.load(ordering: .acquiring) else { return false }
        var failure: String?
        do {
            try await client.ping()
            try await ensureSchema()
        } catch {
            failure = String(describing: error)
        }
        let ready = failure == nil
        let changed = state.withLock { s -> Bool in
            defer { s.lastReady = ready }
            return s.lastReady != ready
        }
        if changed {
            if let failure {
                logger.error("clickhouse not available; ingest answers 503 until it is", metadata: ["error": "\(failure)", "url": "\(configuration.url)"])
            } else {
                logger.info("clickhouse available", metadata: ["url": "\(configuration.url)"])
            }
        }
        return ready
    }

    // MARK: Writing

    public func write(_ spans: [Span]) async throws {
        try checkOpen()
        guard !spans.isEmpty else { return }
        try await withRetries("schema") { try await self.ensureSchema() }
        // One insert per day: each lands in one partition as one part, so it is all or nothing.
        var days: [UInt16: [Span]] = [:]
        var order: [UInt16] = []
        for span in spans {
            let day = ClickHouseSQL.day(ofNanos: span.startTimeNanos)
            if days[day] == nil { order.append(day) }
            days[day, default: []].append(span)
        }
        for day in order {
            guard let group = days[day] else { continue }
            let batch = ClickHouseInsertBatch(spans: group, day: day, batchID: UInt64.random(in: 1...UInt64.max), schema: schema)
            for insert in batch.inserts { try await insertOnce(insert, batchID: batch.batchID) }
        }
    }

    /// Sends `insert` so that it is stored exactly once, retrying until the deadline.
    /// `alreadySent` (tests): act as if an earlier attempt's answer was lost.
    func insertOnce(_ insert: ClickHouseInsertBatch.Insert, batchID: UInt64, alreadySent: Bool = false) async throws {
        let queryID = "meshtrace-\(String(batchID, radix: 16))-\(insert.table)"
        let sql = "INSERT INTO \(insert.table) (\(insert.columns)) FORMAT RowBinary"
        var sentBefore = alreadySent
        try await withRetries(insert.table) {
            if sentBefore {
                // An earlier attempt may have landed, or still be running.
                let running = try await self.client.rows("SELECT count() FROM system.processes WHERE query_id = \(ClickHouseSQL.literal(queryID))")
                if running.first?.first != "0" { throw ClickHouseError.server(status: 503, code: 216, message: "first attempt still running") }
                let found = try await self.client.rows("SELECT count() FROM \(insert.table) WHERE \(insert.probe)")
                if let n = found.first?.first, n != "0" {
                    self.logger.info("retried insert had landed; not sent again", metadata: ["table": "\(insert.table)", "batch": "\(batchID)"])
                    return
                }
            }
            sentBefore = true
            try await self.client.execute(
                sql, body: insert.rows, settings: self.insertSettings, gzip: self.configuration.compressInserts, queryID: queryID)
        }
    }

    /// Runs `body` until it succeeds, a non-retryable error (a 4xx: the statement itself is
    /// wrong) or the retry deadline; backs off 50 ms doubling to 1 s.
    func withRetries(_ what: String, _ body: () async throws -> Void) async throws {
        let deadline = ContinuousClock.now + .milliseconds(Int64(configuration.writeRetrySeconds * 1000))
        var delay = Duration.milliseconds(50)
        while true {
            do {
                try await body()
                return
            } catch let error as ClickHouseError {
                if case .server(let status, _, _) = error, (400..<500).contains(status) { throw error }
                if ContinuousClock.now + delay > deadline || closed.load(ordering: .acquiring) { throw error }
                logger.warning("clickhouse write failed; retrying", metadata: ["step": "\(what)", "error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(1))
            }
        }
    }

    // MARK: Admin

    public func stats() async throws -> StoreStats {
        try checkOpen()
        try await ensureSchema()
        let count = Int(try await client.rows("SELECT count() FROM \(schema.spansData)").first?.first ?? "") ?? 0
        // This server's parts only: in cluster mode, the other shards' bytes are not counted.
        let bytes = Int64(
            try await client.rows(
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE active AND database = \(ClickHouseSQL.literal(configuration.database))"
            ).first?.first ?? "") ?? 0
        return StoreStats(spanCount: count, traceCount: nil, bytesOnDisk: bytes)
    }

    public func close() async throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try await client.shutdown()
        logger.info("closed clickhouse trace store", metadata: ["url": "\(configuration.url)"])
    }
}
