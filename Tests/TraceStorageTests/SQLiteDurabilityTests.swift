import Foundation
import MeshtraceTesting
import Testing
import TraceModel

@testable import TraceStorage

@Suite("SQLite store files")
struct SQLiteDurabilityTests {
    @Test func committedDataSurvivesWithoutClose() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = dir.path + "/meshtrace.sqlite"
        // First "process": writes and never closes (as if killed).
        let crashed = try SQLiteTraceStore(path: path, logger: testLogger)
        let spans = StoreConformanceTests.searchFixture()
        try await crashed.write(spans)
        try await crashed.write([richSpan()])

        let reopened = try SQLiteTraceStore(path: path, logger: testLogger)
        #expect(try await reopened.trace(id: tid(1)).count == 3)
        #expect(try await reopened.trace(id: richSpan().traceID) == [richSpan()])
        #expect(try await reopened.serviceNames() == ["Checkout", "backend", "frontend"])
        #expect(try await reopened.findTraceIDs(TraceQuery(tags: ["error": "true"], limit: 10)).count == 3)
        // Both handles can write (WAL + busy timeout), and each sees the other's commits.
        try await reopened.write([span(trace: tid(77), id: 1)])
        #expect(try await crashed.trace(id: tid(77)).count == 1)
        try await reopened.close()
        try await crashed.close()

        let third = try SQLiteTraceStore(path: path, logger: testLogger)
        #expect(try await third.stats().spanCount == spans.count + 2)
        try await third.close()
    }

    @Test func factoryCreatesDirectoriesAndFile() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let nested = dir.path + "/a/b/c"
        let store = try TraceStoreFactory.make(kind: .sqlite, dataDirectory: nested, logger: testLogger)
        #expect(store is SQLiteTraceStore)
        try await store.write([span(trace: tid(1), id: 1)])
        #expect(FileManager.default.fileExists(atPath: nested + "/meshtrace.sqlite"))
        try await store.close()
        #expect(throws: TraceStoreError.dataDirectoryRequired) {
            _ = try TraceStoreFactory.make(kind: .sqlite, dataDirectory: nil, logger: testLogger)
        }
        #expect(try TraceStoreFactory.make(kind: .memory, dataDirectory: nil, logger: testLogger) is InMemoryTraceStore)
    }

    @Test func corruptPayloadIsAnErrorNotACrash() async throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let path = dir.path + "/meshtrace.sqlite"
        let store = try SQLiteTraceStore(path: path, logger: testLogger)
        try await store.write([span(trace: tid(1), id: 1, attributes: [Attribute("k", .string("v"))]), span(trace: tid(2), id: 2, start: t0 + ms)])
        try SQLiteStoreDamage.corruptPayloads(ofTrace: tid(1), inDatabaseAt: path)
        await #expect(throws: TraceStoreError.self) { try await store.trace(id: tid(1)) }
        // Search skips the undecodable span instead of failing.
        #expect(try await store.findTraceIDs(TraceQuery(annotationTerms: ["k"])) == [])
        #expect(try await store.findTraceIDs(TraceQuery(serviceName: "frontend")) == [tid(2), tid(1)])
        try await store.close()
    }
}
