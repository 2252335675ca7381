#if canImport(Glibc)
import Glibc
#endif

/// pipe(2) with both ends close-on-exec (`pipe2` is not exported to Swift), for every spawn of
/// ours. A spawn by another thread between the two calls is covered by that spawn's own
/// `SpawnCloseFrom` step; a spawn we did not write (Foundation's `Process`) is not, which is why
/// the flag is set at all.
public enum CloseOnExecPipe {
    /// `[read, write]`, or nil with `errno` set.
    public static func make() -> [Int32]? {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds { _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC) }
        return fds
    }
}
