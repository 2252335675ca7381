#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+): closes every descriptor from
/// `from` up in the child, between fork and exec. It is not exported to Swift, so it is looked
/// up by name; without it (an older libc) every descriptor of this process is marked
/// close-on-exec before the spawn instead, which a descriptor opened at that moment by another
/// thread can escape.
///
/// Why every spawn of ours needs it: SwiftNIO opens its sockets without close-on-exec, so a
/// child started without this step holds a copy of every connection open at that moment, and a
/// connection we close is not closed while the child lives (no FIN reaches the peer). A
/// long-lived child made that a hang: the ClickHouse server the storage tests start inherited a
/// tunnel test's client socket, and the proxy under test never saw the client leave (120 s, in
/// one full-suite run in five under `stress`).
public enum SpawnCloseFrom {
    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let function: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    public static func add(_ actions: inout posix_spawn_file_actions_t, from: Int32) {
        if let function, function(&actions, from) == 0 { return }
        markAllCloseOnExec(from: from)
    }

    private static func markAllCloseOnExec(from: Int32) {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let fd = Int32(entry), fd >= from else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }
}
