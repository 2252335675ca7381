import Foundation
import Logging
import TraceModel

@testable import TraceStorage

/// One throwaway clickhouse-server for the whole test process, started by
/// `scripts/clickhouse-test-server` (temp dir, free ports) and stopped by that script's
/// watchdog when this process exits, however it exits. Each test gets its own database.
/// `MESHTRACE_CLICKHOUSE_URL` points the tests at an existing server instead (e.g. a current
/// ClickHouse release) and nothing is started.
enum ClickHouseTestServer {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Why the ClickHouse cases cannot run here, or nil when they can. Only a missing binary
    /// (outside CI) is a reason; in CI they always run, and fail if the server cannot start.
    static var skipReason: String? {
        let env = ProcessInfo.processInfo.environment
        if env["MESHTRACE_CLICKHOUSE_URL"] != nil || env["CI"] == "true" { return nil }
        let installed = ["/usr/sbin/clickhouse-server", "/usr/bin/clickhouse-server"].contains { FileManager.default.isExecutableFile(atPath: $0) }
        return installed ? nil : "clickhouse-server is not installed (apt-get install clickhouse-server): ClickHouse conformance cases not run"
    }

    private static let started = Task<String, any Error> {
        if let url = ProcessInfo.processInfo.environment["MESHTRACE_CLICKHOUSE_URL"] { return url }
        let dir = FileManager.default.temporaryDirectory.path + "/meshtrace-clickhouse-tests-" + UUID().uuidString
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [
            repositoryRoot + "/scripts/clickhouse-test-server", "start", dir, "--watch", String(getpid()), "--remove-dir",
        ]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0,
            let url = output.split(separator: " ").first(where: { $0.hasPrefix("url=") })?.dropFirst(4)
        else {
            throw ClickHouseError.unreachable("scripts/clickhouse-test-server failed (\(process.terminationStatus)): \(output)")
        }
        return String(url)
    }

    static func url() async throws -> String { try await started.value }

    /// A configuration with a fresh database on the shared server.
    static func freshConfiguration() async throws -> ClickHouseConfiguration {
        var config = ClickHouseConfiguration(url: try await url(), database: "mt_test_" + Hex.format(UInt64.random(in: 1...UInt64.max)))
        config.writeRetrySeconds = 5
        return config
    }
}
