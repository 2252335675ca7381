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

    @Test func theSoftLimitIsRaisedToTheHardOne() {
        // This process's own limit: after the call the soft limit is as high as allowed.
        let limit = FileDescriptorBudget.raiseSoftLimit()
        #expect((limit ?? 0) >= 64)
        #expect(FileDescriptorBudget.raiseSoftLimit() == limit, "idempotent")
    }
}
