import GRDB
import TraceModel

/// Damages a SQLite trace store's file from outside, as a torn write or a bad disk would: the
/// store offers no way to do it, so a test opens a second connection to the same file (WAL mode
/// lets it write while the store keeps its own connections open).
public enum SQLiteStoreDamage {
    /// Overwrites the stored payload of every span of trace `id` with bytes no span record
    /// decodes from (`SpanRecordCodec` rejects them: unknown version, truncated).
    public static func corruptPayloads(ofTrace id: TraceID, inDatabaseAt path: String) throws {
        var configuration = Configuration()
        configuration.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: path, configuration: configuration)
        try queue.write { db in
            try db.execute(
                sql: "UPDATE spans SET payload = X'01FF00' WHERE trace_hi = ? AND trace_lo = ?",
                arguments: [Int64(bitPattern: id.high), Int64(bitPattern: id.low)])
        }
        try queue.close()
    }
}
