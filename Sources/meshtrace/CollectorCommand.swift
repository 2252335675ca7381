import ArgumentParser
import Collector
import Foundation
import Logging
import MeshRunner
import ServiceLifecycle
import SidecarCLI
import SidecarProxy
import TraceStorage

extension StorageKind: ExpressibleByArgument {}

struct CollectorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collector",
        abstract: "Run the trace backend: Zipkin, OTLP/HTTP, OTLP/gRPC and SkyWalking ingest, Jaeger and Zipkin query APIs.",
        discussion: """
            Spans are acknowledged only after they are committed to the store, so nothing a client \
            was told is stored can be lost on a crash. SIGTERM or SIGINT drains the ingest queue and \
            closes the store. Port 0 picks a free port; the first log line prints every address.
            """
    )

    @Option(help: "Address to bind every listener to.")
    var host = "127.0.0.1"

    @Option(name: .customLong("zipkin-port"), help: "Zipkin v2 ingest (POST /api/v2/spans) and Zipkin query API.")
    var zipkinPort = 9411

    @Option(name: .customLong("otlp-http-port"), help: "OTLP/HTTP ingest (POST /v1/traces), protobuf or JSON.")
    var otlpHTTPPort = 4318

    @Option(name: .customLong("otlp-grpc-port"), parsing: .unconditional, help: "OTLP/gRPC ingest (TraceService/Export). -1 turns it off.")
    var otlpGRPCPort = 4317

    @Option(name: .customLong("skywalking-port"), parsing: .unconditional, help: "SkyWalking agents' gRPC report (TraceSegmentReportService/collect, ManagementService), as the OAP's 11800. -1 turns it off.")
    var skywalkingPort = 11800

    @Option(name: .customLong("skywalking-http-port"), parsing: .unconditional, help: "SkyWalking agents' HTTP report (POST /v3/segment, /v3/segments, /v3/management/*), as the OAP's 12800. -1 turns it off.")
    var skywalkingHTTPPort = 12800

    @Option(name: .customLong("otlp-grpc-tls-cert"), help: "PEM certificate chain: the OTLP/gRPC port speaks TLS (with --otlp-grpc-tls-key).")
    var otlpGRPCTLSCert: String?

    @Option(name: .customLong("otlp-grpc-tls-key"), help: "PEM private key for --otlp-grpc-tls-cert.")
    var otlpGRPCTLSKey: String?

    @Option(name: .customLong("otlp-grpc-max-concurrent-streams"), help: "Calls one OTLP/gRPC connection may have open at once.")
    var otlpGRPCMaxConcurrentStreams = 100

    @Option(name: .customLong("max-message-size"), help: "Largest ingest request in bytes: HTTP body on the wire, gRPC message after decompression.")
    var maxMessageSize = 16 * 1024 * 1024

    @Option(name: .customLong("autocomplete-keys"), help: "Comma-separated span tag keys whose values Zipkin's /api/v2/autocompleteValues lists (as Zipkin's AUTOCOMPLETE_KEYS).")
    var autocompleteKeys = ""

    @Option(name: .customLong("query-port"), help: "Jaeger-compatible query API (/api/...).")
    var queryPort = 16686

    @Option(name: .customLong("admin-port"), help: "/metrics (Prometheus), /healthz and /readyz.")
    var adminPort = 14269

    @Option(help: "Where spans live: sqlite (durable, default), clickhouse (shared by several collectors) or memory (lost on exit).")
    var storage: StorageKind = .sqlite

    @Option(name: .customLong("clickhouse-url"), help: "ClickHouse HTTP interface, with --storage clickhouse.")
    var clickHouseURL = "http://127.0.0.1:8123"

    @Option(name: .customLong("clickhouse-database"), help: "ClickHouse database (created if missing).")
    var clickHouseDatabase = "meshtrace"

    @Option(name: .customLong("clickhouse-user"), help: "ClickHouse user.")
    var clickHouseUser = "default"

    @Option(name: .customLong("clickhouse-password"), help: "ClickHouse password. Default: $MESHTRACE_CLICKHOUSE_PASSWORD, else empty.")
    var clickHousePassword: String?

    @Option(
        name: .customLong("clickhouse-cluster"),
        help: "A remote_servers cluster: tables ON CLUSTER plus Distributed tables sharded by trace id (needs ZooKeeper for ON CLUSTER).")
    var clickHouseCluster: String?

    @Option(name: .customLong("data-dir"), help: "SQLite data directory. Default: $MESHTRACE_DATA_DIR, else ~/.local/share/meshtrace.")
    var dataDir: String?

    @Option(help: "Delete spans older than this (e.g. 72h, 7d, 30m).")
    var retention = "72h"

    @Option(name: .customLong("retention-check-interval"), help: "How often spans past --retention are looked for and deleted (e.g. 60s, 5m; at least 100ms).")
    var retentionCheckInterval = "60s"

    @Option(name: .customLong("ingest-queue-capacity"), help: "Spans that may wait for the store; beyond this ingest answers 503 with Retry-After.")
    var ingestQueueCapacity = 200_000

    @Option(name: .customLong("sampling-policy"), help: "Tail-based sampling: a YAML policy file (OpenTelemetry tail_sampling keys), re-read when it changes. Off unless given.")
    var samplingPolicy: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func validate() throws {
        for (flag, port) in [("--zipkin-port", zipkinPort), ("--otlp-http-port", otlpHTTPPort), ("--query-port", queryPort), ("--admin-port", adminPort)]
        where !(0...65535).contains(port) {
            throw ValidationError("\(flag) must be between 0 and 65535, got \(port)")
        }
        for (flag, port) in [("--otlp-grpc-port", otlpGRPCPort), ("--skywalking-port", skywalkingPort), ("--skywalking-http-port", skywalkingHTTPPort)]
        where !(-1...65535).contains(port) {
            throw ValidationError("\(flag) must be between 0 and 65535, or -1 for off, got \(port)")
        }
        switch (otlpGRPCTLSCert, otlpGRPCTLSKey) {
        case (nil, nil): break
        case (let cert?, let key?):
            for (flag, path) in [("--otlp-grpc-tls-cert", cert), ("--otlp-grpc-tls-key", key)] where !FileManager.default.isReadableFile(atPath: path) {
                throw ValidationError("\(flag): cannot read '\(path)'")
            }
        default:
            throw ValidationError("--otlp-grpc-tls-cert and --otlp-grpc-tls-key go together: give both or neither")
        }
        guard otlpGRPCMaxConcurrentStreams > 0 else { throw ValidationError("--otlp-grpc-max-concurrent-streams must be positive") }
        guard maxMessageSize >= 1024 else { throw ValidationError("--max-message-size must be at least 1024 bytes, got \(maxMessageSize)") }
        guard let nanos = GoDuration.parseNanos(retention), nanos > 0 else {
            throw ValidationError("--retention must be a positive duration like 72h, 7d or 30m, got '\(retention)'")
        }
        if storage == .clickhouse, let problem = clickHouseConfiguration.validationError() { throw ValidationError(problem) }
        guard let interval = GoDuration.parseNanos(retentionCheckInterval), interval >= 100_000_000 else {
            throw ValidationError("--retention-check-interval must be a duration of at least 100ms like 60s or 5m, got '\(retentionCheckInterval)'")
        }
        guard ingestQueueCapacity > 0 else { throw ValidationError("--ingest-queue-capacity must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() async throws {
        let logger = bootstrapLogging(logLevel, label: "meshtrace.collector")
        FileDescriptorBudget.raiseSoftLimit()  // every connection is a descriptor; children inherit it

        var config = CollectorConfiguration()
        config.host = host
        config.zipkinPort = zipkinPort
        config.otlpHTTPPort = otlpHTTPPort
        config.otlpGRPCPort = otlpGRPCPort
        config.skywalkingGRPCPort = skywalkingPort
        config.skywalkingHTTPPort = skywalkingHTTPPort
        if let cert = otlpGRPCTLSCert, let key = otlpGRPCTLSKey {
            config.otlpGRPCTLS = GRPCTLSFiles(certificateChainPath: cert, privateKeyPath: key)
        }
        config.grpcLimits.maxConcurrentStreams = otlpGRPCMaxConcurrentStreams
        config.grpcLimits.maxMessageBytes = maxMessageSize
        config.maxRequestBodyBytes = maxMessageSize
        config.autocompleteKeys = autocompleteKeys.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        config.queryPort = queryPort
        config.adminPort = adminPort
        config.storage = storage
        config.dataDirectory = storage == .sqlite ? DataDirectory.resolve(dataDir) : nil
        config.clickHouse = storage == .clickhouse ? clickHouseConfiguration : nil
        config.ingestQueueCapacitySpans = ingestQueueCapacity
        config.retentionSeconds = Double(GoDuration.parseNanos(retention) ?? 0) / 1e9
        config.retentionIntervalSeconds = Double(GoDuration.parseNanos(retentionCheckInterval) ?? 60_000_000_000) / 1e9

        if let path = samplingPolicy {
            config.samplingPolicy = try Self.loadPolicy(path)
            config.samplingPolicyPath = path
        }

        let server = CollectorServer(configuration: config, logger: logger, gracefulShutdownSignals: [.sigterm, .sigint])
        try await server.run()
    }
}

extension CollectorCommand {
    /// Reads the policy file; a problem stops the start with the file, line and field.
    static func loadPolicy(_ path: String) throws -> SamplingPolicyFile {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CLIError("--sampling-policy: cannot read '\(path)': \(error.localizedDescription)")
        }
        do {
            return try SamplingPolicyFile.parse(text, fileName: path)
        } catch {
            throw CLIError("--sampling-policy: \(error)")
        }
    }

    var clickHouseConfiguration: ClickHouseConfiguration {
        ClickHouseConfiguration(
            url: clickHouseURL, database: clickHouseDatabase, user: clickHouseUser,
            password: clickHousePassword ?? ProcessInfo.processInfo.environment["MESHTRACE_CLICKHOUSE_PASSWORD"] ?? "",
            cluster: clickHouseCluster)
    }
}

enum DataDirectory {
    /// `--data-dir`, else `$MESHTRACE_DATA_DIR`, else `$XDG_DATA_HOME/meshtrace`, else `~/.local/share/meshtrace`.
    static func resolve(_ flag: String?) -> String {
        let env = ProcessInfo.processInfo.environment
        if let flag, !flag.isEmpty { return flag }
        if let dir = env["MESHTRACE_DATA_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_DATA_HOME"], !xdg.isEmpty { return xdg + "/meshtrace" }
        return MeshStateFile.homeDirectory(environment: env) + "/.local/share/meshtrace"
    }
}
