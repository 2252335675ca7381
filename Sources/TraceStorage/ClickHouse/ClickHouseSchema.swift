/// The tables, written for ClickHouse 18.16 (Debian's package) and valid on current releases:
/// no Map, DateTime64, TTL, codecs, skip indexes, LowCardinality or SimpleAggregateFunction
/// (backend-facts.md §5.6). Time is a `Date` partition key, a `DateTime` for the primary key
/// and exact nanoseconds in a `UInt64`.
///
/// - `spans_index`: one row per span for search, ordered by (service, name, time) as Jaeger
///   v2's ClickHouse schema is (it measured 140 ms vs 880 ms for a filtered search against
///   trace-id order); tags as `Nested(key, value)` strings, the Zipkin terms as an array.
/// - `spans_data`: the whole span (`SpanRecordCodec`) ordered by trace id, so get-trace is one
///   primary-key range per partition read.
/// - `trace_bounds`: trace id → day and time bounds, so get-trace reads only the partitions
///   that hold the trace (the OTel exporter's and Jaeger v2's trace-id table).
/// - `operations`: (service, name, kind, remote service) per day, fed by a materialized view.
///
/// Every table is partitioned by day: retention drops whole partitions. Each has `batch_id`,
/// the insert's block id, which a retried insert checks before sending the rows again.
struct ClickHouseSchema: Sendable {
    static let currentVersion = 1

    let database: String
    let cluster: String?

    /// Table names queries use (the `Distributed` ones in cluster mode).
    var spansIndex: String { "\(database).spans_index" }
    var spansData: String { "\(database).spans_data" }
    var traceBounds: String { "\(database).trace_bounds" }
    var operations: String { "\(database).operations" }
    var versionTable: String { "\(database).schema_version" }

    /// The table that holds the rows on this server (`_local` in cluster mode).
    func local(_ table: String) -> String { cluster == nil ? "\(database).\(table)" : "\(database).\(table)_local" }
    var onCluster: String { cluster.map { " ON CLUSTER \($0)" } ?? "" }

    var createDatabase: String { "CREATE DATABASE IF NOT EXISTS \(database)\(onCluster)" }

    var createVersionTable: String {
        "CREATE TABLE IF NOT EXISTS \(versionTable)\(onCluster) (version UInt32, applied DateTime DEFAULT now()) "
            + "ENGINE = MergeTree() ORDER BY version"
    }

    /// Statements of each migration, in order. Each is idempotent, so two collectors starting
    /// at once, or a migration cut short, are harmless.
    func migrations() -> [(version: Int, statements: [String])] {
        [(1, version1())]
    }

    private func version1() -> [String] {
        var s: [String] = []
        s.append(
            """
            CREATE TABLE IF NOT EXISTS \(local("spans_index"))\(onCluster) (
              date Date, ts DateTime, start_ns UInt64, duration_ns UInt64,
              trace_hi UInt64, trace_lo UInt64, span_id UInt64, parent_id UInt64,
              service String, name String, kind UInt8, is_error UInt8, remote_service String,
              tags Nested(key String, value String), terms Array(String), batch_id UInt64
            ) ENGINE = MergeTree() PARTITION BY date ORDER BY (service, name, ts) SETTINGS index_granularity = 8192
            """)
        s.append(
            """
            CREATE TABLE IF NOT EXISTS \(local("spans_data"))\(onCluster) (
              date Date, start_ns UInt64, trace_hi UInt64, trace_lo UInt64, span_id UInt64, payload String, batch_id UInt64
            ) ENGINE = MergeTree() PARTITION BY date ORDER BY (trace_hi, trace_lo, start_ns) SETTINGS index_granularity = 1024
            """)
        s.append(
            """
            CREATE TABLE IF NOT EXISTS \(local("trace_bounds"))\(onCluster) (
              date Date, trace_hi UInt64, trace_lo UInt64, start_ns UInt64, end_ns UInt64, batch_id UInt64
            ) ENGINE = MergeTree() PARTITION BY date ORDER BY (trace_hi, trace_lo) SETTINGS index_granularity = 1024
            """)
        s.append(
            """
            CREATE TABLE IF NOT EXISTS \(local("operations"))\(onCluster) (
              date Date, service String, name String, kind UInt8, remote_service String, spans UInt64
            ) ENGINE = SummingMergeTree() PARTITION BY date ORDER BY (service, name, kind, remote_service)
            """)
        s.append(
            """
            CREATE MATERIALIZED VIEW IF NOT EXISTS \(local("operations_mv"))\(onCluster) TO \(local("operations")) AS
              SELECT date, service, name, kind, remote_service, count() AS spans FROM \(local("spans_index"))
              GROUP BY date, service, name, kind, remote_service
            """)
        if let cluster {
            // One trace's rows, in every table, land on one shard: get-trace reads one shard and
            // a trace is never split by a shard being down.
            for table in ["spans_index", "spans_data", "trace_bounds", "operations"] {
                s.append(
                    "CREATE TABLE IF NOT EXISTS \(database).\(table)\(onCluster) AS \(local(table)) "
                        + "ENGINE = Distributed(\(cluster), \(database), \(table)_local, \(table == "operations" ? "rand()" : "cityHash64(trace_hi, trace_lo)"))")
            }
        }
        return s
    }

    /// Local tables that retention drops partitions from.
    var partitionedTables: [String] { ["spans_index", "spans_data", "trace_bounds", "operations"].map(local) }
}
