import Foundation
import MeshtraceTesting
import Testing
import TraceModel

@testable import TraceStorage

/// ClickHouse-only behaviour: what the conformance suite cannot see.
@Suite("ClickHouse store")
struct ClickHouseStoreTests {
    /// Shows as skipped, with the reason, where there is no clickhouse-server (never in CI).
    @Test(.disabled(if: ClickHouseTestServer.skipReason != nil, "\(ClickHouseTestServer.skipReason ?? "")"))
    func serverStartsAndAnswers() async throws {
        let config = try await ClickHouseTestServer.freshConfiguration()
        let store = try ClickHouseTraceStore(configuration: config, logger: testLogger)
        #expect(await store.isReady())
        try await store.dropDatabase()
        try await store.close()
    }

    /// A retried insert whose first answer was lost must not store the block twice, and one
    /// that never landed must be sent.
    @Test(.disabled(if: ClickHouseTestServer.skipReason != nil, "\(ClickHouseTestServer.skipReason ?? "")"))
    func retriedInsertIsStoredOnce() async throws {
        try await withStore(.clickhouse) { any, _ in
            let store = try #require(any as? ClickHouseTraceStore)
            try await store.ensureSchema()
            let spans = (1...50).map { span(trace: tid(UInt64($0 % 5 + 1)), id: UInt64($0), start: t0 + UInt64($0) * ms) }
            let landed = ClickHouseInsertBatch(spans: spans, day: ClickHouseSQL.day(ofNanos: t0), batchID: 77, schema: store.schema)
            for insert in landed.inserts {
                // The first attempt lands, but its answer is "lost": the retry must find it.
                try await store.client.execute("INSERT INTO \(insert.table) (\(insert.columns)) FORMAT RowBinary", body: insert.rows)
                try await store.insertOnce(insert, batchID: landed.batchID, alreadySent: true)
            }
            #expect(try await store.stats().spanCount == 50)
            #expect(try await store.trace(id: tid(1)).count == 10)
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "frontend", limit: 100)).count == 5)
            // A block that never landed is sent on retry.
            let lost = ClickHouseInsertBatch(spans: spans, day: ClickHouseSQL.day(ofNanos: t0), batchID: 78, schema: store.schema)
            for insert in lost.inserts { try await store.insertOnce(insert, batchID: lost.batchID, alreadySent: true) }
            #expect(try await store.stats().spanCount == 100)
        }
    }

    /// Down at start: the store is created, reports not ready, and a write fails (so ingest
    /// answers 503) once the retry deadline passes, instead of hanging.
    @Test func unreachableServerIsNotReadyAndWritesFail() async throws {
        var config = ClickHouseConfiguration(url: "http://127.0.0.1:\(try refusingPort())", database: "meshtrace")
        config.writeRetrySeconds = 0.5
        let store = try ClickHouseTraceStore(configuration: config, logger: testLogger)
        #expect(await store.isReady() == false)
        let started = ContinuousClock.now
        await #expect(throws: ClickHouseError.self) { try await store.write([richSpan()]) }
        #expect(ContinuousClock.now - started < .seconds(10))
        try await store.close()
    }

    @Test func configurationErrorsNameTheFlag() {
        #expect(ClickHouseConfiguration(url: "https://x:8123").validationError()?.contains("--clickhouse-url") == true)
        #expect(ClickHouseConfiguration(database: "a; DROP").validationError()?.contains("--clickhouse-database") == true)
        #expect(ClickHouseConfiguration(cluster: "c'").validationError()?.contains("--clickhouse-cluster") == true)
        #expect(ClickHouseConfiguration().validationError() == nil)
    }

    @Test func literalsEscapeEveryByteThatCouldEndThem() {
        #expect(ClickHouseSQL.literal("a'b\\c") == "'a\\'b\\\\c'")
        #expect(ClickHouseSQL.literal("\t\n\u{0}") == "'\\x09\\x0a\\x00'")
        #expect(ClickHouseSQL.literal("ü") == "'ü'")
        #expect(ClickHouseSQL.dateLiteral(0) == "'1970-01-01'")
        #expect(ClickHouseSQL.dateLiteral(ClickHouseSQL.day(ofNanos: t0)) == "'2023-11-14'")
        #expect(ClickHouseSQL.dateLiteral(ClickHouseSQL.day(ofNanos: 951_782_400_000_000_000)) == "'2000-02-29'")
    }
}
