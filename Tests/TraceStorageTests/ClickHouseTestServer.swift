import CaptureRules
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
        let outPath = dir + ".out"
        defer { try? FileManager.default.removeItem(atPath: outPath) }
        let status = try await spawnAndWait(
            "/bin/bash", [repositoryRoot + "/scripts/clickhouse-test-server", "start", dir, "--watch", String(getpid()), "--remove-dir"],
            stdout: outPath)
        let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        guard status == 0, let url = output.split(separator: " ").first(where: { $0.hasPrefix("url=") })?.dropFirst(4) else {
            throw ClickHouseError.unreachable("scripts/clickhouse-test-server failed (\(status)): \(output)")
        }
        return String(url)
    }

    /// posix_spawn, and the blocking waitpid on a thread of its own, never on the threads Swift
    /// concurrency runs its jobs on (on Linux, dispatch's global workers, as many as there are
    /// cores: 2 here), since the script runs for seconds, far longer under load. Measured: with the
    /// script slowed by 35 s, IngestQueue's tests still passed in ~2 s either way, so this was not
    /// what held up the whole test process for ~33 s in one full-suite run; it is just one blocked
    /// worker fewer. Foundation's `Process` never reported this script's exit inside the test
    /// process (its termination handler and `waitUntilExit()` both hung); stdout goes to a file
    /// because the servers the script leaves running would hold a pipe open.
    private static func spawnAndWait(_ path: String, _ args: [String], stdout: String) async throws -> Int32 {
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        // The servers the script starts outlive it: without this they held every socket the test
        // process had open at the time (a tunnel test's client among them, which then never closed).
        SpawnCloseFrom.add(&actions, from: 3)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw ClickHouseError.unreachable("posix_spawn \(path): \(rc)") }
        let child = pid
        return await withCheckedContinuation { (done: CheckedContinuation<Int32, Never>) in
            let waiter = Thread {
                // Named for gdb and /proc (15 bytes at most on Linux); it inherits its creator's
                // name, a cooperative thread's, otherwise.
                Thread.current.name = "ch-test-waitpid"
                var status: Int32 = 0
                while waitpid(child, &status, 0) < 0 && errno == EINTR {}
                let signal = status & 0x7f  // killed by a signal: 128 + its number, as the shell reports it
                done.resume(returning: signal == 0 ? (status >> 8) & 0xff : 128 + signal)
            }
            waiter.start()
        }
    }

    static func url() async throws -> String { try await started.value }

    /// A configuration with a fresh database on the shared server.
    static func freshConfiguration() async throws -> ClickHouseConfiguration {
        var config = ClickHouseConfiguration(url: try await url(), database: "mt_test_" + Hex.format(UInt64.random(in: 1...UInt64.max)))
        config.writeRetrySeconds = 5
        return config
    }
}
