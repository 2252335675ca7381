#if canImport(Glibc)
import Glibc
#endif
import Testing

@testable import SidecarProxy

@Suite struct FileDescriptorBudgetTests {
    @Test func theConnectionCapFitsTheOpenFileLimit() {
        // Each admitted client may need an upstream connection as well, after a reserve.
        #expect(FileDescriptorBudget.downstreamConnections(configured: 10_000, openFileLimit: 1024) == 448)
        #expect(FileDescriptorBudget.downstreamConnections(configured: 10_000, openFileLimit: 64) == 16)
        #expect(FileDescriptorBudget.downstreamConnections(configured: 100, openFileLimit: 1024) == 100, "a lower setting stands")
        #expect(FileDescriptorBudget.downstreamConnections(configured: 10_000, openFileLimit: 1 << 20) == 10_000)
        #expect(FileDescriptorBudget.downstreamConnections(configured: 10_000, openFileLimit: 3) == 1, "never zero")
        #expect(FileDescriptorBudget.downstreamConnections(configured: 10_000, openFileLimit: Int.max) == 10_000)
    }

    /// The soft limit is lowered a little first (harmless to the tests running beside this one),
    /// so the call has something to raise; then the limit in force, read back with getrlimit, is
    /// the hard one (at most 1 << 20).
    @Test func theSoftLimitIsRaisedToTheHardOne() throws {
        var before = rlimit()
        try #require(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &before) == 0)
        let wanted = min(before.rlim_max, rlim_t(1 << 20))
        try #require(wanted >= 64, "a hard limit of \(before.rlim_max) open files is too low to run the suite")
        var lowered = before
        lowered.rlim_cur = wanted - 1
        try #require(setrlimit(Int32(RLIMIT_NOFILE.rawValue), &lowered) == 0)

        let limit = FileDescriptorBudget.raiseSoftLimit()
        var after = rlimit()
        try #require(getrlimit(Int32(RLIMIT_NOFILE.rawValue), &after) == 0)
        #expect(after.rlim_cur == wanted, "soft \(after.rlim_cur), hard \(after.rlim_max)")
        #expect(after.rlim_max == before.rlim_max, "the hard limit is left alone")
        #expect(limit == Int(wanted), "returns the limit in force")
        #expect(FileDescriptorBudget.raiseSoftLimit() == limit, "idempotent")
    }
}
