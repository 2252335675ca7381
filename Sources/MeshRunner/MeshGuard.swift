#if canImport(Glibc)
import Glibc
#endif
import CaptureRules
import Foundation
import Synchronization

/// Makes service processes die with the mesh, even when `up` itself is killed with SIGKILL
/// and can run no code. A small helper process (`meshtrace mesh-guard`) reads, on a pipe from
/// `up`, the process groups of the services as they start (`+PGID`) and end (`-PGID`). When
/// the pipe closes without a final `exit` line, `up` is gone: the helper sends SIGTERM to every
/// group still listed, SIGKILL after `grace`, and exits.
///
/// A pipe rather than `PR_SET_PDEATHSIG`: that signal reaches only the direct child and fires
/// when the *thread* that spawned it exits (Swift's pool threads come and go); a service run
/// through `sh -c` or one with workers has grandchildren, and the guard reaches them through
/// their process group.
public final class MeshGuard: Sendable {
    private let pipe: Mutex<Int32?>

    private init(writeEnd: Int32) {
        pipe = Mutex(writeEnd)
    }

    /// Starts the helper. Its stdin is the pipe's read end; it keeps our stderr, so its word
    /// on what it stopped reaches the terminal after `up` is gone.
    static func start(executable: String) throws -> MeshGuard {
        signal(SIGPIPE, SIG_IGN)  // a write to a helper that died must fail, not kill the mesh
        guard let fds = CloseOnExecPipe.make() else { throw MeshStartError("cannot start the process guard: \(String(cString: strerror(errno)))") }
        defer { close(fds[0]) }
        do {
            _ = try ChildProcess(arguments: [executable, "mesh-guard", "--parent", String(getpid())], environment: ProcessInfo.processInfo.environment,
                                 workingDirectory: nil, standardInput: fds[0], onLine: nil)
        } catch {
            close(fds[1])
            throw MeshStartError("cannot start the process guard (\(executable) mesh-guard): \(error)")
        }
        return MeshGuard(writeEnd: fds[1])
    }

    func started(group: pid_t) { send("+\(group)\n") }
    func ended(group: pid_t) { send("-\(group)\n") }

    /// Every service stopped cleanly: the helper exits without signalling anything.
    func release() {
        send("exit\n")
        pipe.withLock { fd in
            if let open = fd { close(open) }
            fd = nil
        }
    }

    private func send(_ line: String) {
        pipe.withLock { fd in
            guard let open = fd else { return }
            let bytes = Array(line.utf8)
            // Lines are far below PIPE_BUF, so each write is whole; a dead helper gives EPIPE
            // (SIGPIPE is ignored from `start` on).
            _ = bytes.withUnsafeBytes { write(open, $0.baseAddress, $0.count) }
        }
    }

    /// The helper's side: runs until `up` says `exit` or the pipe closes.
    public static func serve(parent: Int32, grace: Duration = .seconds(2)) -> Never {
        signal(SIGINT, SIG_IGN)  // Ctrl-C is for `up`, which then stops its services itself
        signal(SIGPIPE, SIG_IGN)
        var groups = Set<pid_t>()
        while let line = readLine() {
            if line == "exit" { exit(0) }
            guard let sign = line.first, let pgid = pid_t(line.dropFirst()), pgid > 1 else { continue }
            if sign == "+" { groups.insert(pgid) } else if sign == "-" { groups.remove(pgid) }
        }
        let alive = groups.filter { kill(-$0, 0) == 0 }
        guard !alive.isEmpty else { exit(0) }
        FileHandle.standardError.write(Data(
            "meshtrace: the mesh (pid \(parent)) ended without stopping its services; stopping process groups \(alive.sorted().map(String.init).joined(separator: ", "))\n".utf8))
        for group in alive { kill(-group, SIGTERM) }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline, alive.contains(where: { kill(-$0, 0) == 0 }) {
            usleep(20_000)
        }
        for group in alive where kill(-group, 0) == 0 { kill(-group, SIGKILL) }
        exit(0)
    }
}
