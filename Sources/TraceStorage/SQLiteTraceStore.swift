import Foundation
import GRDB
#if canImport(GRDBSQLite)
import GRDBSQLite
#elseif canImport(SQLite3)
import SQLite3
#endif
import Logging
import Synchronization
import TraceModel

/// Spans in one SQLite file through GRDB's `DatabasePool` (WAL, `synchronous=NORMAL`: a committed
/// transaction survives a process kill; an OS crash may lose the last few).
///
/// Schema: `spans` has the searchable columns plus the whole span as a `SpanRecordCodec` BLOB;
/// `operations` and `remote_services` are small lookup tables upserted in the same transaction as the spans.
public final class SQLiteTraceStore: TraceStore {
    private let pool: DatabasePool
    private let logger: Logger
    private let path: String
    /// Lookup rows known to be in `operations`/`remote_services`. Read and changed only inside write
    /// transactions (serialized by GRDB), so it never claims a row that a retention cleanup removed.
    private let knownLookups = LookupCache()
    private let closed = Atomic<Bool>(false)

    /// Rows deleted per retention transaction, so writers never wait long.
    static let deleteChunk = 5_000

    final class LookupCache: Sendable {
        let state = Mutex(KnownLookups())

        func withLock<R>(_ body: (inout KnownLookups) -> R) -> R { state.withLock { body(&$0) } }
    }

    struct KnownLookups {
        var operations = Set<OperationKey>()
        var remotes = Set<RemoteKey>()
    }

    struct OperationKey: Hashable {
        var service: String
        var name: String
        var kind: UInt8
    }

    struct RemoteKey: Hashable {
        var service: String
        var remote: String
    }

    /// One span as bound into the INSERT, prepared outside the write transaction.
    struct InsertRow: Sendable {
        var traceHi: Int64
        var traceLo: Int64
        var spanID: Int64
        var parentID: Int64?
        var service: String
        var name: String
        var kind: Int64
        var startNs: Int64
        var durationNs: Int64
        var isError: Int64
        var remote: String?
        var payload: [UInt8]
    }

    public init(path: String, logger: Logger) throws {
        self.path = path
        self.logger = logger
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.maximumReaderCount = 4
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA cache_size = -32000")  // 32 MB per connection
        }
        pool = try DatabasePool(path: path, configuration: config)
        // Checkpoint (and fsync) every ~32 MB of WAL instead of every 4 MB: far fewer syncs for the same data.
        // The WAL file is truncated back to 64 MB after a checkpoint if it grew past that.
        try pool.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 8000")
            try db.execute(sql: "PRAGMA journal_size_limit = 67108864")
        }
        try Self.migrator.migrate(pool)
        logger.info("opened sqlite trace store", metadata: ["path": "\(path)"])
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE spans (
                        id INTEGER PRIMARY KEY,
                        trace_hi INTEGER NOT NULL,
                        trace_lo INTEGER NOT NULL,
                        span_id INTEGER NOT NULL,
                        parent_id INTEGER,
                        service TEXT NOT NULL,
                        name TEXT NOT NULL,
                        kind INTEGER NOT NULL,
                        start_ns INTEGER NOT NULL,
                        duration_ns INTEGER NOT NULL,
                        is_error INTEGER NOT NULL,
                        remote_service TEXT,
                        payload BLOB NOT NULL
                    );
                    CREATE INDEX spans_trace ON spans(trace_hi, trace_lo);
                    CREATE INDEX spans_service_start ON spans(service, start_ns);
                    CREATE INDEX spans_start ON spans(start_ns);
                    CREATE TABLE operations (
                        service TEXT NOT NULL,
                        name TEXT NOT NULL,
                        kind INTEGER NOT NULL,
                        PRIMARY KEY (service, name, kind)
                    ) WITHOUT ROWID;
                    CREATE TABLE remote_services (
                        service TEXT NOT NULL,
                        remote TEXT NOT NULL,
                        PRIMARY KEY (service, remote)
                    ) WITHOUT ROWID;
                    """)
        }
        return m
    }

    private func checkOpen() throws {
        if closed.load(ordering: .acquiring) { throw TraceStoreError.closed }
    }

    private static func int(_ v: UInt64) -> Int64 { Int64(clamping: v) }

    // MARK: Writing

    public func write(_ spans: [Span]) async throws {
        try checkOpen()
        guard !spans.isEmpty else { return }
        var rows: [InsertRow] = []
        rows.reserveCapacity(spans.count)
        var ops = Set<OperationKey>()
        var remotes = Set<RemoteKey>()
        for span in spans {
            let remote = SpanIndexing.remoteServiceName(of: span)
            rows.append(
                InsertRow(
                    traceHi: Int64(bitPattern: span.traceID.high), traceLo: Int64(bitPattern: span.traceID.low),
                    spanID: Int64(bitPattern: span.spanID.value),
                    parentID: span.parentSpanID.map { Int64(bitPattern: $0.value) },
                    service: span.serviceName, name: span.name, kind: Int64(span.kind.rawValue),
                    startNs: Self.int(span.startTimeNanos), durationNs: Self.int(span.durationNanos),
                    isError: span.isError ? 1 : 0, remote: remote,
                    payload: SpanRecordCodec.encode(span)))
            ops.insert(OperationKey(service: span.serviceName, name: span.name, kind: span.kind.rawValue))
            if let remote { remotes.insert(RemoteKey(service: span.serviceName, remote: remote)) }
        }
        let frozenRows = rows
        let frozenOps = ops
        let frozenRemotes = remotes
        let known = knownLookups
        try await pool.write { db in
            let insert = try db.cachedStatement(
                sql: """
                    INSERT INTO spans (trace_hi, trace_lo, span_id, parent_id, service, name, kind,
                                       start_ns, duration_ns, is_error, remote_service, payload)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
            try Self.insert(frozenRows, with: insert, db: db)
            let (newOps, newRemotes) = known.withLock { k in
                (frozenOps.subtracting(k.operations), frozenRemotes.subtracting(k.remotes))
            }
            if !newOps.isEmpty {
                let s = try db.cachedStatement(sql: "INSERT OR IGNORE INTO operations (service, name, kind) VALUES (?, ?, ?)")
                for o in newOps { try s.execute(arguments: [o.service, o.name, Int64(o.kind)]) }
            }
            if !newRemotes.isEmpty {
                let s = try db.cachedStatement(sql: "INSERT OR IGNORE INTO remote_services (service, remote) VALUES (?, ?)")
                for o in newRemotes { try s.execute(arguments: [o.service, o.remote]) }
            }
            if !newOps.isEmpty || !newRemotes.isEmpty {
                // Only remembered once the transaction commits; a rollback must not leave them cached.
                db.afterNextTransaction { _ in
                    known.withLock { k in
                        k.operations.formUnion(newOps)
                        k.remotes.formUnion(newRemotes)
                    }
                }
            }
        }
    }

    /// The hot loop: binds straight through the C API (GRDB's `StatementArguments` boxes every value,
    /// which costs about a third of the insert time for a 12-column row).
    private static func insert(_ rows: [InsertRow], with statement: Statement, db: Database) throws {
        let stmt = statement.sqliteStatement
        let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)  // SQLITE_TRANSIENT
        func text(_ index: Int32, _ value: String?) {
            guard var value else {
                sqlite3_bind_null(stmt, index)
                return
            }
            value.withUTF8 { utf8 in
                if let base = utf8.baseAddress, utf8.count > 0 {
                    let chars = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
                    _ = sqlite3_bind_text(stmt, index, chars, Int32(utf8.count), transient)
                } else {
                    _ = sqlite3_bind_text(stmt, index, "", 0, transient)
                }
            }
        }
        for r in rows {
            sqlite3_reset(stmt)
            sqlite3_bind_int64(stmt, 1, r.traceHi)
            sqlite3_bind_int64(stmt, 2, r.traceLo)
            sqlite3_bind_int64(stmt, 3, r.spanID)
            if let p = r.parentID { sqlite3_bind_int64(stmt, 4, p) } else { sqlite3_bind_null(stmt, 4) }
            text(5, r.service)
            text(6, r.name)
            sqlite3_bind_int64(stmt, 7, r.kind)
            sqlite3_bind_int64(stmt, 8, r.startNs)
            sqlite3_bind_int64(stmt, 9, r.durationNs)
            sqlite3_bind_int64(stmt, 10, r.isError)
            text(11, r.remote)
            r.payload.withUnsafeBytes { buffer in
                if let base = buffer.baseAddress, buffer.count > 0 {
                    _ = sqlite3_bind_blob(stmt, 12, base, Int32(buffer.count), transient)
                } else {
                    _ = sqlite3_bind_zeroblob(stmt, 12, 0)
                }
            }
            let code = sqlite3_step(stmt)
            guard code == SQLITE_DONE else {
                let message = String(cString: sqlite3_errmsg(db.sqliteConnection))
                sqlite3_reset(stmt)
                throw DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
            }
        }
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    // MARK: Reading

    private static func decodePayload(_ row: GRDB.Row, index: Int) throws -> Span {
        try row.withUnsafeData(atIndex: index) { data -> Span in
            guard let data else { throw TraceStoreError.corruptRecord("missing payload") }
            return try data.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) throws -> Span in
                do {
                    return try SpanRecordCodec.decode(buffer: buffer)
                } catch {
                    throw TraceStoreError.corruptRecord(String(describing: error))
                }
            }
        }
    }

    private static func fetchTrace(_ db: Database, _ id: TraceID) throws -> [Span] {
        let rows = try GRDB.Row.fetchCursor(
            db.cachedStatement(sql: "SELECT payload FROM spans WHERE trace_hi = ? AND trace_lo = ? ORDER BY start_ns, id"),
            arguments: [Int64(bitPattern: id.high), Int64(bitPattern: id.low)])
        var spans: [Span] = []
        while let row = try rows.next() { spans.append(try decodePayload(row, index: 0)) }
        return spans
    }

    public func trace(id: TraceID) async throws -> [Span] {
        try checkOpen()
        return try await pool.read { db in try Self.fetchTrace(db, id) }
    }

    public func traces(ids: [TraceID]) async throws -> [[Span]] {
        try checkOpen()
        guard !ids.isEmpty else { return [] }
        return try await pool.read { db in try ids.map { try Self.fetchTrace(db, $0) } }
    }

    public func findTraceIDs(_ query: TraceQuery) async throws -> [TraceID] {
        try checkOpen()
        guard query.limit > 0, query.startTimeMinNanos <= query.startTimeMaxNanos else { return [] }
        var conditions = ["start_ns >= ?", "start_ns <= ?"]
        var arguments: StatementArguments = [Self.int(query.startTimeMinNanos), Self.int(query.startTimeMaxNanos)]
        if let s = query.serviceName {
            conditions.append("service = ?")
            _ = arguments.append(contentsOf: [s])
        }
        if let n = query.operationName {
            conditions.append("name = ?")
            _ = arguments.append(contentsOf: [n])
        }
        if let k = query.spanKind {
            conditions.append("kind = ?")
            _ = arguments.append(contentsOf: [Int64(k.rawValue)])
        }
        if let r = query.remoteServiceName {
            conditions.append("remote_service = ?")
            _ = arguments.append(contentsOf: [r])
        }
        if let m = query.minDurationNanos {
            conditions.append("duration_ns >= ?")
            _ = arguments.append(contentsOf: [Self.int(m)])
        }
        if let m = query.maxDurationNanos {
            conditions.append("duration_ns <= ?")
            _ = arguments.append(contentsOf: [Self.int(m)])
        }
        let needsPayload = SpanIndexing.needsPayload(query)
        let sql = "SELECT trace_hi, trace_lo\(needsPayload ? ", payload" : "") FROM spans WHERE "
            + conditions.joined(separator: " AND ") + " ORDER BY start_ns DESC"
        let frozenArguments = arguments
        let logger = self.logger
        return try await pool.read { db in
            var found: [TraceID] = []
            var seen = Set<TraceID>()
            let rows = try GRDB.Row.fetchCursor(db, sql: sql, arguments: frozenArguments)
            while found.count < query.limit, let row = try rows.next() {
                let id = TraceID(
                    high: UInt64(bitPattern: row[0] as Int64), low: UInt64(bitPattern: row[1] as Int64))
                if seen.contains(id) { continue }
                if needsPayload {
                    let span: Span
                    do {
                        span = try Self.decodePayload(row, index: 2)
                    } catch {
                        logger.warning("skipping undecodable span", metadata: ["traceID": "\(id)", "error": "\(error)"])
                        continue
                    }
                    guard SpanIndexing.matchesPayload(span, query) else { continue }
                }
                seen.insert(id)
                found.append(id)
            }
            return found
        }
    }

    public func serviceNames() async throws -> [String] {
        try checkOpen()
        return try await pool.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT service FROM operations ORDER BY service")
        }
    }

    public func operations(service: String, kind: SpanKind?) async throws -> [Operation] {
        try checkOpen()
        return try await pool.read { db in
            var sql = "SELECT name, kind FROM operations WHERE service = ?"
            var args: StatementArguments = [service]
            if let kind {
                sql += " AND kind = ?"
                _ = args.append(contentsOf: [Int64(kind.rawValue)])
            }
            sql += " ORDER BY name, kind"
            return try GRDB.Row.fetchAll(db, sql: sql, arguments: args).compactMap { row in
                guard let k = SpanKind(rawValue: UInt8(truncatingIfNeeded: row[1] as Int64)) else { return nil }
                return Operation(name: row[0], kind: k)
            }
        }
    }

    public func remoteServiceNames(service: String) async throws -> [String] {
        try checkOpen()
        return try await pool.read { db in
            try String.fetchAll(
                db, sql: "SELECT remote FROM remote_services WHERE service = ? ORDER BY remote", arguments: [service])
        }
    }

    public func dependencies(startNanos: UInt64, endNanos: UInt64) async throws -> [DependencyLink] {
        try checkOpen()
        guard startNanos <= endNanos else { return [] }
        return try await pool.read { db in
            let ids = try GRDB.Row.fetchAll(
                db, sql: "SELECT DISTINCT trace_hi, trace_lo FROM spans WHERE start_ns >= ? AND start_ns <= ?",
                arguments: [Self.int(startNanos), Self.int(endNanos)]
            ).map { TraceID(high: UInt64(bitPattern: $0[0] as Int64), low: UInt64(bitPattern: $0[1] as Int64)) }
            var links: [DependencyLink] = []
            for id in ids { links.append(contentsOf: DependencyLinker.link(trace: try Self.fetchTrace(db, id))) }
            return DependencyLinker.merge(links)
        }
    }

    public func spans(startNanos: UInt64, endNanos: UInt64, limit: Int) async throws -> [Span] {
        try checkOpen()
        guard limit > 0, startNanos <= endNanos else { return [] }
        let logger = self.logger
        return try await pool.read { db in
            let rows = try GRDB.Row.fetchCursor(
                db.cachedStatement(sql: "SELECT payload FROM spans WHERE start_ns >= ? AND start_ns <= ? ORDER BY start_ns DESC LIMIT ?"),
                arguments: [Self.int(startNanos), Self.int(endNanos), limit])
            var spans: [Span] = []
            while let row = try rows.next() {
                do {
                    spans.append(try Self.decodePayload(row, index: 0))
                } catch {
                    logger.warning("skipping undecodable span", metadata: ["error": "\(error)"])
                }
            }
            return spans.sorted(by: SpanIndexing.newestFirst)
        }
    }

    // MARK: Retention

    public func deleteSpans(startedBefore cutoff: UInt64) async throws -> Int {
        try checkOpen()
        let limit = Self.int(cutoff)
        var total = 0
        while true {
            let deleted = try await pool.write { db -> Int in
                try db.execute(
                    sql: "DELETE FROM spans WHERE id IN (SELECT id FROM spans WHERE start_ns < ? ORDER BY start_ns LIMIT ?)",
                    arguments: [limit, Self.deleteChunk])
                return db.changesCount
            }
            total += deleted
            if deleted < Self.deleteChunk { break }
            await Task.yield()
        }
        if total > 0 {
            try await pruneLookups()
            logger.debug("retention deleted spans", metadata: ["count": "\(total)"])
        }
        return total
    }

    /// Drops `operations`/`remote_services` rows that no stored span uses any more. The existence checks run
    /// as reads; only the (usually few) stale rows are re-checked and deleted inside a write.
    private func pruneLookups() async throws {
        let (staleOps, staleRemotes) = try await pool.read { db -> ([OperationKey], [RemoteKey]) in
            var ops: [OperationKey] = []
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT service, name, kind FROM operations") {
                let key = OperationKey(service: row[0], name: row[1], kind: UInt8(truncatingIfNeeded: row[2] as Int64))
                let exists = try Bool.fetchOne(
                    db, sql: "SELECT EXISTS (SELECT 1 FROM spans WHERE service = ? AND name = ? AND kind = ?)",
                    arguments: [key.service, key.name, Int64(key.kind)]) ?? false
                if !exists { ops.append(key) }
            }
            var remotes: [RemoteKey] = []
            for row in try GRDB.Row.fetchAll(db, sql: "SELECT service, remote FROM remote_services") {
                let key = RemoteKey(service: row[0], remote: row[1])
                let exists = try Bool.fetchOne(
                    db, sql: "SELECT EXISTS (SELECT 1 FROM spans WHERE service = ? AND remote_service = ?)",
                    arguments: [key.service, key.remote]) ?? false
                if !exists { remotes.append(key) }
            }
            return (ops, remotes)
        }
        guard !staleOps.isEmpty || !staleRemotes.isEmpty else { return }
        let known = knownLookups
        try await pool.write { db in
            for k in staleOps {
                try db.execute(
                    sql: """
                        DELETE FROM operations WHERE service = ? AND name = ? AND kind = ?
                        AND NOT EXISTS (SELECT 1 FROM spans WHERE service = ? AND name = ? AND kind = ?)
                        """,
                    arguments: [k.service, k.name, Int64(k.kind), k.service, k.name, Int64(k.kind)])
            }
            for k in staleRemotes {
                try db.execute(
                    sql: """
                        DELETE FROM remote_services WHERE service = ? AND remote = ?
                        AND NOT EXISTS (SELECT 1 FROM spans WHERE service = ? AND remote_service = ?)
                        """,
                    arguments: [k.service, k.remote, k.service, k.remote])
            }
            known.withLock { $0 = KnownLookups() }
        }
    }

    // MARK: Admin

    public func stats() async throws -> StoreStats {
        try checkOpen()
        let count = try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM spans") ?? 0 }
        var bytes: Int64 = 0
        for suffix in ["", "-wal", "-shm"] {
            if let attrs = try? FileManager.default.attributesOfItem(atPath: path + suffix),
                let size = attrs[.size] as? NSNumber
            {
                bytes += size.int64Value
            }
        }
        return StoreStats(spanCount: count, traceCount: nil, bytesOnDisk: bytes)
    }

    public func close() async throws {
        guard !closed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try pool.close()
        logger.info("closed sqlite trace store", metadata: ["path": "\(path)"])
    }
}
