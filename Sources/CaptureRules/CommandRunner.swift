import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// What running a program returned.
public struct CommandResult: Sendable, Equatable {
    public var status: Int32
    public var output: String
    public var error: String

    public init(status: Int32, output: String, error: String) {
        self.status = status
        self.output = output
        self.error = error
    }
}

/// Runs programs; a seam so that rule installation can be checked without root.
public protocol CommandRunner: Sendable {
    /// nil when the program is not found.
    func locate(_ program: String) -> String?
    func run(_ path: String, _ arguments: [String], input: String?) throws -> CommandResult
}

/// Runs programs with `posix_spawn` and pipes, looking in `PATH` and the sbin directories (an
/// init container's `PATH` may lack them). Not Foundation's `Process`: in a namespace whose `lo`
/// is still down (a fresh `ip netns add`), it could not make its wakeup sockets and hung.
public struct ProcessRunner: CommandRunner {
    public init() {}

    public struct SpawnFailed: Error, CustomStringConvertible {
        public var description: String
    }

    public func locate(_ program: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let directories = path.split(separator: ":").map(String.init) + ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        for directory in directories where !directory.isEmpty {
            let candidate = directory + "/" + program
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public func run(_ path: String, _ arguments: [String], input: String?) throws -> CommandResult {
        #if canImport(Glibc)
        // Close-on-exec, so a spawn elsewhere in the process (`up` starting services while the
        // sidecar installs rules) cannot hold our pipes open and keep iptables-restore waiting.
        guard let stdin = CloseOnExecPipe.make() else {
            throw SpawnFailed(description: "pipe: \(String(cString: strerror(errno)))")
        }
        guard let stdout = CloseOnExecPipe.make() else {
            let failure = errno
            close(stdin[0]); close(stdin[1])
            throw SpawnFailed(description: "pipe: \(String(cString: strerror(failure)))")
        }
        guard let stderr = CloseOnExecPipe.make() else {
            let failure = errno
            for fd in stdin + stdout { close(fd) }
            throw SpawnFailed(description: "pipe: \(String(cString: strerror(failure)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdout[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderr[1], 2)
        for fd in stdin + stdout + stderr { posix_spawn_file_actions_addclose(&actions, fd) }
        SpawnCloseFrom.add(&actions, from: 3)  // nothing else of ours: not the sidecar's sockets
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, path, &actions, nil, argv, environ)
        close(stdin[0])
        close(stdout[1])
        close(stderr[1])
        guard spawned == 0 else {
            close(stdin[1]); close(stdout[0]); close(stderr[0])
            throw SpawnFailed(description: "cannot run \(path): \(String(cString: strerror(spawned)))")
        }
        if let input {
            // Rule scripts are a few KB, below a pipe's buffer, and iptables-restore reads all of
            // its input before writing: writing first cannot block.
            var bytes = Array(input.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes.withUnsafeMutableBytes { write(stdin[1], $0.baseAddress! + offset, $0.count - offset) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                offset += n
            }
        }
        close(stdin[1])
        let (out, err) = Self.readBoth(stdout[0], stderr[0])
        close(stdout[0])
        close(stderr[0])
        var status: CInt = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        // WIFEXITED / WEXITSTATUS / WTERMSIG by hand: they are macros.
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return CommandResult(status: code, output: String(decoding: out, as: UTF8.self), error: String(decoding: err, as: UTF8.self))
        #else
        throw SpawnFailed(description: "running \(path) needs Linux")
        #endif
    }

    #if canImport(Glibc)
    /// Reads two pipes to their ends together (a full stderr pipe must not stall stdout).
    private static func readBoth(_ a: CInt, _ b: CInt) -> ([UInt8], [UInt8]) {
        var outputs: [[UInt8]] = [[], []]
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var open = 2
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while open > 0 {
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    outputs[i] += buffer[0..<n]
                } else if n == 0 || errno != EINTR {
                    fds[i].fd = -1
                    open -= 1
                }
            }
        }
        return (outputs[0], outputs[1])
    }
    #endif
}
