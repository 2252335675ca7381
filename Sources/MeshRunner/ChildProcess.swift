#if canImport(Glibc)
import Glibc
#endif
import CaptureRules
import Foundation

/// A child process in its own process group, with stdout and stderr delivered line by line.
/// posix_spawn rather than Foundation.Process, because stopping a service must reach whatever
/// it started too (`sh -c …`, a Python server's workers): we signal the whole group.
final class ChildProcess: @unchecked Sendable {
    let pid: pid_t
    private let outputThreads: [Thread]

    enum SpawnError: Error, CustomStringConvertible {
        case failed(String, Int32)
        var description: String {
            switch self {
            case .failed(let command, let code): return "cannot start '\(command)': \(String(cString: strerror(code)))"
            }
        }
    }

    /// Starts `arguments[0]` (looked up in PATH) with exactly `environment`, and with no file
    /// descriptor of ours but the three standard ones: `standardInput` (default /dev/null) and
    /// pipes for stdout and stderr (ours, when `onLine` is nil). SwiftNIO opens its sockets without close-on-exec, so
    /// without the close-from step every app held the mesh's listeners (and kept 16686 taken
    /// after `up` died).
    init(arguments: [String], environment: [String: String], workingDirectory: String?, standardInput: Int32? = nil,
         onLine: (@Sendable (String, Bool) -> Void)?) throws {
        // glibc's posix_spawn_file_actions_addchdir_np is not exported to Swift; a tiny shell
        // trampoline changes directory and then execs the real program (same pid, same group).
        let arguments = workingDirectory.map { ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", $0] + arguments } ?? arguments
        var stdoutPipe: [Int32] = [1, 1]  // our own stdout and stderr unless output is captured
        var stderrPipe: [Int32] = [2, 2]
        if onLine != nil {
            guard let out = CloseOnExecPipe.make() else { throw SpawnError.failed(arguments.first ?? "", errno) }
            guard let err = CloseOnExecPipe.make() else {
                close(out[0])
                close(out[1])
                throw SpawnError.failed(arguments.first ?? "", errno)
            }
            stdoutPipe = out
            stderrPipe = err
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
        if let standardInput {
            posix_spawn_file_actions_adddup2(&actions, standardInput, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        SpawnCloseFrom.add(&actions, from: 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setpgroup(&attributes, 0)  // own process group: pid == pgid
        var defaultSignals = sigset_t()
        sigemptyset(&defaultSignals)
        sigaddset(&defaultSignals, SIGINT)
        sigaddset(&defaultSignals, SIGTERM)
        sigaddset(&defaultSignals, SIGPIPE)
        posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawnp(&child, arguments.first ?? "", &actions, &attributes, argv, envp)
        guard let onLine else {
            guard rc == 0 else { throw SpawnError.failed(arguments.first ?? "", rc) }
            pid = child
            outputThreads = []
            return
        }
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard rc == 0 else {
            close(stdoutPipe[0])
            close(stderrPipe[0])
            throw SpawnError.failed(arguments.first ?? "", rc)
        }
        pid = child
        outputThreads = [(stdoutPipe[0], false), (stderrPipe[0], true)].map { fd, isError in
            let thread = Thread {
                let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
                var pending = Data()
                while true {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    pending.append(chunk)
                    while let newline = pending.firstIndex(of: 0x0A) {
                        onLine(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self), isError)
                        pending.removeSubrange(pending.startIndex...newline)
                    }
                }
                if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self), isError) }
            }
            thread.start()
            return thread
        }
    }

    /// Signals the whole process group.
    func signal(_ signal: Int32) {
        _ = kill(-pid, signal)
    }

    /// Waits for exit without blocking a cooperative thread; returns the exit status as the shell shows it.
    func waitForExit() async -> Int32 {
        let pid = self.pid
        return await withCheckedContinuation { continuation in
            Thread {
                var status: Int32 = 0
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                let exited = status & 0x7F == 0
                continuation.resume(returning: exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F))
            }.start()
        }
    }

    /// True while any process of the group is alive.
    var groupAlive: Bool { kill(-pid, 0) == 0 }
}
