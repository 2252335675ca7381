#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import CaptureRules

/// `ProcessRunner` runs real programs (iptables in the product; `sh` here).
@Suite struct ProcessRunnerTests {
    /// A socket opened as SwiftNIO opens its own (no close-on-exec) is not in the child: the
    /// child's descriptor of that number, if any, is not our socket. Before `SpawnCloseFrom`
    /// the child held it, and a child that outlives the connection keeps it from closing.
    @Test func aProgramItRunsHoldsNoSocketOfOurs() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd > 2)
        defer { close(fd) }
        var info = stat()
        try #require(fstat(fd, &info) == 0)
        let ours = "socket:[\(info.st_ino)]"
        let result = try ProcessRunner().run("/bin/sh", ["-c", "readlink /proc/$$/fd/\(fd) || echo closed"], input: nil)
        #expect(result.status == 0)
        #expect(!result.output.contains(ours), "the child holds our socket \(fd): \(result.output)")
        #expect(!result.output.isEmpty, "the child answered")
    }
}
