import Testing
import TraceModel

@testable import TraceStorage

/// `spans(startNanos:endNanos:limit:)` must behave the same on every backend.
@Suite("TraceStore windowed spans")
struct WindowedSpansTests {
    @Test(arguments: StorageKind.allCases)
    func returnsSpansStartingInWindowNewestFirst(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            let fixture = StoreConformanceTests.searchFixture()
            try await store.write(fixture)

            // Everything, newest first.
            let all = try await store.spans(startNanos: 0, endNanos: .max, limit: 100)
            #expect(all.count == fixture.count)
            #expect(all.map(\.startTimeNanos) == fixture.map(\.startTimeNanos).sorted(by: >))
            #expect(Set(all) == Set(fixture))  // full payloads, every field

            // Inclusive bounds: [t0 + 10ms, t0 + 1000ms] holds spans 12, 13 and 21.
            let window = try await store.spans(startNanos: t0 + 10 * ms, endNanos: t0 + 1000 * ms, limit: 100)
            #expect(window.map(\.spanID) == [sid(21), sid(13), sid(12)])

            // The limit keeps the newest.
            let newest = try await store.spans(startNanos: 0, endNanos: .max, limit: 2)
            #expect(newest.map(\.spanID) == [sid(31), sid(22)])

            #expect(try await store.spans(startNanos: t0 + 5000 * ms, endNanos: .max, limit: 10).isEmpty)
            #expect(try await store.spans(startNanos: 0, endNanos: .max, limit: 0).isEmpty)
            #expect(try await store.spans(startNanos: t0 + 1, endNanos: t0, limit: 10).isEmpty)
        }
    }

    @Test(arguments: StorageKind.allCases)
    func windowFollowsRetentionAndClose(kind: StorageKind) async throws {
        if kind == .clickhouse && ClickHouseTestServer.skipReason != nil { return }
        let dir = try TempDir()
        defer { dir.cleanup() }
        let store = try await makeStore(kind, dataDirectory: dir.path + "/data")
        do {
            try await store.write(StoreConformanceTests.searchFixture())
            _ = try await store.deleteSpans(startedBefore: t0 + 1000 * ms)
            let left = try await store.spans(startNanos: 0, endNanos: .max, limit: 100)
            #expect(left.map(\.spanID) == [sid(31), sid(22), sid(21)])
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
        await #expect(throws: TraceStoreError.closed) { _ = try await store.spans(startNanos: 0, endNanos: .max, limit: 1) }
    }
}
