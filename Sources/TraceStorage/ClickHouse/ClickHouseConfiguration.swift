/// Where and how the ClickHouse store connects (`meshtrace collector --storage clickhouse`).
public struct ClickHouseConfiguration: Sendable, Hashable {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123`.
    public var url: String
    public var database: String
    public var user: String
    public var password: String
    /// `remote_servers` cluster name: tables are created `ON CLUSTER` as `<name>_local`, with
    /// `Distributed` tables under the plain names, sharded by trace id.
    public var cluster: String?
    /// gzip insert bodies (level 1). Sidecar-shaped spans shrink about 6x; on loopback it costs CPU.
    public var compressInserts: Bool
    /// How long one batch is retried (idempotently) before the write fails and ingest answers 503.
    public var writeRetrySeconds: Double
    /// Per-request timeout.
    public var requestTimeoutSeconds: Double
    /// Search the newest minute first and widen (`SearchWindows`). Off only in the collector
    /// benchmark, to time the one-window search it replaced in the same run.
    package var narrowsSearch = true

    public init(
        url: String = "http://127.0.0.1:8123", database: String = "meshtrace", user: String = "default", password: String = "",
        cluster: String? = nil, compressInserts: Bool = true, writeRetrySeconds: Double = 10, requestTimeoutSeconds: Double = 30
    ) {
        self.url = url
        self.database = database
        self.user = user
        self.password = password
        self.cluster = cluster
        self.compressInserts = compressInserts
        self.writeRetrySeconds = writeRetrySeconds
        self.requestTimeoutSeconds = requestTimeoutSeconds
    }

    /// A message naming the flag, or nil when usable.
    public func validationError() -> String? {
        guard let scheme = url.split(separator: ":", maxSplits: 1).first, scheme == "http",
            url.hasPrefix("http://"), url.count > "http://".count
        else { return "--clickhouse-url must be an http:// URL like http://127.0.0.1:8123, got '\(url)'" }
        if !ClickHouseSQL.isIdentifier(database) {
            return "--clickhouse-database must be letters, digits and _ (not starting with a digit), got '\(database)'"
        }
        if let cluster, !ClickHouseSQL.isIdentifier(cluster) {
            return "--clickhouse-cluster must be letters, digits and _ (not starting with a digit), got '\(cluster)'"
        }
        return nil
    }
}

public enum ClickHouseError: Error, Sendable, CustomStringConvertible {
    /// The server answered with an error (`Code: N, e.displayText() = ...`).
    case server(status: Int, code: Int?, message: String)
    /// No answer: connection refused, reset or timed out.
    case unreachable(String)
    case badResult(String)

    public var description: String {
        switch self {
        case .server(let status, _, let message): return "ClickHouse answered \(status): \(message)"
        case .unreachable(let why): return "ClickHouse unreachable: \(why)"
        case .badResult(let why): return "unexpected ClickHouse result: \(why)"
        }
    }

    /// ClickHouse's numeric error code, when it sent one.
    var code: Int? { if case .server(_, let code, _) = self { return code } else { return nil } }
}
