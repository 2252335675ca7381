import Foundation
import TraceStorage

/// The store a benchmark section runs against: SQLite in a temp dir, or a fresh database on
/// a ClickHouse server.
enum Backend: Sendable {
    case sqlite
    case clickhouse(String)

    var label: String {
        switch self {
        case .sqlite: return "SQLite"
        case .clickhouse: return "ClickHouse"
        }
    }

    var kind: StorageKind {
        switch self {
        case .sqlite: return .sqlite
        case .clickhouse: return .clickhouse
        }
    }

    /// Spans per write when filling: what each store's ingest path batches to.
    var writeBatch: Int {
        switch self {
        case .sqlite: return 5_000
        case .clickhouse: return 50_000
        }
    }

    var rawBatches: [Int] {
        switch self {
        case .sqlite: return [100, 1000]
        case .clickhouse: return [1000, 5000, 50_000]
        }
    }

    /// ClickHouse also at 4x the connections: its per-insert round trip, not CPU, bounds one writer.
    func connectionCounts(_ base: Int) -> [Int] {
        switch self {
        case .sqlite: return [base]
        case .clickhouse: return [base, base * 4]
        }
    }

    func open(_ name: String) async throws -> OpenedStore {
        switch self {
        case .sqlite:
            let dir = tempDir(name)
            return OpenedStore(store: try SQLiteTraceStore(path: dir + "/meshtrace.sqlite", logger: logger), directory: dir, clickHouse: nil)
        case .clickhouse(let url):
            // A database name is letters, digits and `_`: the section names have dashes.
            let database = "bench_\(name.replacingOccurrences(of: "-", with: "_"))_\(getpid())"
            // OPTIMIZE ... FINAL before the size is read takes over the default 30 s at 10M spans
            // on a loaded machine (a 10M run died on it at 20:17 on 2026-12-07).
            let config = ClickHouseConfiguration(url: url, database: database, requestTimeoutSeconds: 900)
            let store = try ClickHouseTraceStore(configuration: config, logger: logger)
            guard await store.isReady() else { throw ClickHouseError.unreachable("no ClickHouse at \(url)") }
            return OpenedStore(store: store, directory: nil, clickHouse: config)
        }
    }
}

struct OpenedStore {
    let store: any TraceStore
    let directory: String?
    let clickHouse: ClickHouseConfiguration?

    func close() async throws { try await store.close() }

    /// Stats once ClickHouse's background merges have settled (bytes per span counts merged parts).
    func settledStats() async throws -> StoreStats {
        if let ch = store as? ClickHouseTraceStore { try await ch.optimize() }
        return try await store.stats()
    }

    /// Removes the data: the temp dir, or the ClickHouse database.
    func cleanup() async throws {
        if let directory { try? FileManager.default.removeItem(atPath: directory) }
        if let clickHouse {
            let store = try ClickHouseTraceStore(configuration: clickHouse, logger: logger)
            try await store.dropDatabase()
            try await store.close()
        }
    }
}

func loadAverage() -> String {
    (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "?"
}
