import Foundation
import Testing
import TraceModel

@testable import TraceStorage

/// Every backend must pass these with identical results (Jaeger v2's pattern: one suite, every
/// backend). `StorageKind.allCases` includes ClickHouse, run against a throwaway server.
@Suite("TraceStore conformance")
struct StoreConformanceTests {
    @Test(arguments: StorageKind.allCases)
    func roundTripKeepsEverySpanField(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            let wide = richSpan()
            let narrowID = tid(0x00ab_cdef_0000_0001)  // 64-bit id: high == 0
            var narrow = span(trace: narrowID, id: 2, kind: .internal, name: "child", start: t0 + 5 * ms)
            narrow.status = .ok
            let narrowRoot = span(trace: narrowID, id: 1, name: "root", start: t0)
            // Written out of order: reads come back sorted by start time.
            try await store.write([wide, narrow])
            try await store.write([narrowRoot])

            let readWide = try await store.trace(id: wide.traceID)
            #expect(readWide == [wide])
            #expect(readWide.first?.traceID.hex.count == 32)
            let readNarrow = try await store.trace(id: narrowID)
            #expect(readNarrow == [narrowRoot, narrow])
            #expect(readNarrow.first?.traceID.hex == "00abcdef00000001")
            // A 128-bit id whose low half equals a 64-bit id is a different trace.
            #expect(try await store.trace(id: TraceID(high: 5, low: narrowID.low)).isEmpty)
            #expect(try await store.trace(id: tid(999)).isEmpty)

            let many = try await store.traces(ids: [narrowID, tid(999), wide.traceID])
            #expect(many == [[narrowRoot, narrow], [], [wide]])
        }
    }

    /// Fixture for search tests: three traces at different times.
    static func searchFixture() -> [Span] {
        [
            // trace 1 @ t0: frontend server -> backend
            span(
                trace: tid(1), id: 11, kind: .server, name: "GET /home", service: "frontend", start: t0,
                duration: 100 * ms, attributes: [Attribute("http.status_code", .int(200)), Attribute("region", .string("eu"))],
                events: [SpanEvent(timeNanos: t0 + ms, name: "cache.miss", attributes: [Attribute("cache.key", .string("home"))])]),
            span(
                trace: tid(1), id: 12, parent: 11, kind: .client, name: "GET /api", service: "frontend", start: t0 + 10 * ms,
                duration: 50 * ms, attributes: [Attribute("http.status_code", .int(500))], remote: "backend"),
            span(
                trace: tid(1), id: 13, parent: 12, kind: .server, name: "GET /api", service: "backend", start: t0 + 11 * ms,
                duration: 40 * ms, resource: [Attribute("host.name", .string("db-1"))], status: .error("failed")),
            // trace 2 @ t0+1s: frontend only, attributes split over two spans
            span(
                trace: tid(2), id: 21, kind: .server, name: "GET /home", service: "frontend", start: t0 + 1000 * ms,
                duration: 5 * ms, attributes: [Attribute("http.status_code", .int(200))]),
            span(
                trace: tid(2), id: 22, parent: 21, kind: .internal, name: "render", service: "frontend", start: t0 + 1001 * ms,
                duration: 2 * ms, attributes: [Attribute("region", .string("eu")), Attribute("peer.service", .string("templates"))]),
            // trace 3 @ t0+2s, 128-bit id
            span(
                trace: tid(3, high: 3), id: 31, kind: .server, name: "POST /pay", service: "backend", start: t0 + 2000 * ms,
                duration: 300 * ms, attributes: [Attribute("error", .string("timeout"))]),
        ]
    }

    @Test(arguments: StorageKind.allCases)
    func findByServiceOperationAndKind(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            try await store.write(Self.searchFixture())
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "frontend")) == [tid(2), tid(1)])
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "backend")) == [tid(3, high: 3), tid(1)])
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "nobody")).isEmpty)
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "frontend", operationName: "render")) == [tid(2)])
            #expect(try await store.findTraceIDs(TraceQuery(operationName: "get /home")).isEmpty)  // case-sensitive
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "frontend", spanKind: .client)) == [tid(1)])
            #expect(try await store.findTraceIDs(TraceQuery(spanKind: .server)) == [tid(3, high: 3), tid(2), tid(1)])
            #expect(try await store.findTraceIDs(TraceQuery(remoteServiceName: "backend")) == [tid(1)])
            #expect(try await store.findTraceIDs(TraceQuery(remoteServiceName: "templates")) == [tid(2)])  // peer.service
            // Service and operation must hold on the same span: backend has no "GET /home".
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "backend", operationName: "GET /home")).isEmpty)
        }
    }

    @Test(arguments: StorageKind.allCases)
    func findByTagsOnOneSpan(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            try await store.write(Self.searchFixture())
            func find(_ tags: [String: String], service: String? = nil) async throws -> [TraceID] {
                try await store.findTraceIDs(TraceQuery(serviceName: service, tags: tags))
            }
            #expect(try await find(["http.status_code": "200"]) == [tid(2), tid(1)])  // int attribute by description
            #expect(try await find(["http.status_code": "500"]) == [tid(1)])
            // ANDed on the same span: trace 1's root has both; trace 2 has them on two different spans.
            #expect(try await find(["http.status_code": "200", "region": "eu"]) == [tid(1)])
            #expect(try await find(["http.status_code": "500", "region": "eu"]).isEmpty)
            #expect(try await find(["region": "EU"]).isEmpty)  // exact match
            #expect(try await find(["host.name": "db-1"]) == [tid(1)])  // resource attribute
            #expect(try await find(["cache.key": "home"]) == [tid(1)])  // event attribute
            // error=true: status error (trace 1's backend span) and Zipkin error tag (trace 3).
            #expect(try await find(["error": "true"]) == [tid(3, high: 3), tid(1)])
            #expect(try await find(["error": "true"], service: "frontend").isEmpty)
            #expect(try await find(["error": "timeout"]) == [tid(3, high: 3)])
        }
    }

    @Test(arguments: StorageKind.allCases)
    func findByAnnotationTerms(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            try await store.write(Self.searchFixture())
            func find(_ terms: [String], tags: [String: String] = [:]) async throws -> [TraceID] {
                try await store.findTraceIDs(TraceQuery(tags: tags, annotationTerms: terms))
            }
            #expect(try await find(["cache.miss"]) == [tid(1)])  // event name
            #expect(try await find(["region"]) == [tid(2), tid(1)])  // attribute key
            #expect(try await find(["cache.miss", "region"]) == [tid(1)])
            #expect(try await find(["cache.miss", "peer.service"]).isEmpty)  // not on one span
            #expect(try await find(["region"], tags: ["http.status_code": "200"]) == [tid(1)])
            #expect(try await find(["home"]).isEmpty)  // values are not terms
        }
    }

    @Test(arguments: StorageKind.allCases)
    func findByDurationAndTimeWindow(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            try await store.write(Self.searchFixture())
            #expect(try await store.findTraceIDs(TraceQuery(minDurationNanos: 100 * ms)) == [tid(3, high: 3), tid(1)])
            #expect(try await store.findTraceIDs(TraceQuery(minDurationNanos: 101 * ms)) == [tid(3, high: 3)])
            #expect(try await store.findTraceIDs(TraceQuery(maxDurationNanos: 2 * ms)) == [tid(2)])
            #expect(
                try await store.findTraceIDs(TraceQuery(serviceName: "frontend", minDurationNanos: 40 * ms, maxDurationNanos: 60 * ms))
                    == [tid(1)])
            // Inclusive window on span start.
            #expect(
                try await store.findTraceIDs(TraceQuery(startTimeMinNanos: t0 + 1000 * ms, startTimeMaxNanos: t0 + 2000 * ms))
                    == [tid(3, high: 3), tid(2)])
            #expect(try await store.findTraceIDs(TraceQuery(startTimeMinNanos: t0 + 11 * ms, startTimeMaxNanos: t0 + 11 * ms)) == [tid(1)])
            #expect(try await store.findTraceIDs(TraceQuery(startTimeMinNanos: t0 + 3000 * ms)).isEmpty)
            // The window applies to the matching span: trace 1's backend span is outside [t0+12ms, ...].
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "backend", startTimeMinNanos: t0 + 12 * ms)) == [tid(3, high: 3)])
        }
    }

    @Test(arguments: StorageKind.allCases)
    func limitAndNewestFirstOrdering(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            var spans: [Span] = []
            // Trace i has two matching spans; its newest matching span decides its place.
            for i in UInt64(1)...30 {
                spans.append(span(trace: tid(i), id: i * 10, name: "a", start: t0 + i * ms))
                spans.append(span(trace: tid(i), id: i * 10 + 1, parent: i * 10, name: "a", start: t0 + (100 - i) * 2 * ms))
            }
            spans.shuffle()
            try await store.write(spans)
            let all = try await store.findTraceIDs(TraceQuery(serviceName: "frontend", limit: 100))
            #expect(all == (1...30).map { tid($0) })  // trace 1 has the newest span (t0 + 198ms)
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "frontend", limit: 3)) == [tid(1), tid(2), tid(3)])
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "frontend", limit: 0)).isEmpty)
            // Only the first spans (t0+1..30ms) match this window: ordering follows them.
            let early = try await store.findTraceIDs(TraceQuery(startTimeMaxNanos: t0 + 30 * ms, limit: 4))
            #expect(early == [tid(30), tid(29), tid(28), tid(27)])
        }
    }

    /// Spans from 40 days ago to an hour ahead: ClickHouse searches the newest minute first and
    /// widens (`SearchWindows`); the answers must be those of one search over the whole window.
    @Test(arguments: StorageKind.allCases)
    func newestFirstAcrossWidelySpreadTimes(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            let now = UInt64(Date().timeIntervalSince1970 * 1e9)
            let s: UInt64 = 1_000_000_000
            let future = tid(5), recent = tid(1), mixed = tid(3), twentyMinutes = tid(2), old = tid(4)
            try await store.write([
                span(trace: future, id: 51, name: "a", start: now + 3600 * s),
                span(trace: recent, id: 11, name: "a", start: now - 10 * s),
                span(trace: mixed, id: 31, name: "a", start: now - 3 * 86400 * s),
                span(trace: mixed, id: 32, parent: 31, name: "a", start: now - 30 * s),
                span(trace: twentyMinutes, id: 21, name: "a", start: now - 1200 * s),
                span(trace: old, id: 41, name: "a", start: now - 40 * 86400 * s),
            ])
            func find(limit: Int, before: UInt64 = UInt64.max) async throws -> [TraceID] {
                try await store.findTraceIDs(TraceQuery(serviceName: "frontend", startTimeMaxNanos: before, limit: limit))
            }
            #expect(try await find(limit: 2) == [future, recent])
            #expect(try await find(limit: 4) == [future, recent, mixed, twentyMinutes])
            #expect(try await find(limit: 10) == [future, recent, mixed, twentyMinutes, old])
            // A window ending a day ago: `mixed` is placed by its span of three days ago.
            #expect(try await find(limit: 1, before: now - 86400 * s) == [mixed])
            #expect(try await find(limit: 5, before: now - 86400 * s) == [mixed, old])
        }
    }

    @Test(arguments: StorageKind.allCases)
    func servicesOperationsAndRemoteServices(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            try await store.write(Self.searchFixture())
            try await store.write(Self.searchFixture())  // again: lookups stay distinct
            #expect(try await store.serviceNames() == ["backend", "frontend"])
            #expect(
                try await store.operations(service: "frontend", kind: nil) == [
                    Operation(name: "GET /api", kind: .client), Operation(name: "GET /home", kind: .server),
                    Operation(name: "render", kind: .internal),
                ])
            #expect(try await store.operations(service: "frontend", kind: .server) == [Operation(name: "GET /home", kind: .server)])
            #expect(try await store.operations(service: "backend", kind: .client).isEmpty)
            #expect(try await store.operations(service: "nobody", kind: nil).isEmpty)
            #expect(try await store.remoteServiceNames(service: "frontend") == ["backend", "templates"])
            #expect(try await store.remoteServiceNames(service: "backend").isEmpty)
            let stats = try await store.stats()
            #expect(stats.spanCount == 12)
            if kind == .memory { #expect(stats.traceCount == 3) } else { #expect((stats.bytesOnDisk ?? 0) > 0) }
        }
    }

    @Test(arguments: StorageKind.allCases)
    func dependenciesInWindow(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            try await store.write(Self.searchFixture())
            // Trace 1: frontend -> backend (client/server pair, server errored). Trace 2: a kind-less span with
            // local and remote (peer.service) names counts as a client. Trace 3: root server, unknown caller.
            let toBackend = DependencyLink(parent: "frontend", child: "backend", callCount: 1, errorCount: 1)
            let toTemplates = DependencyLink(parent: "frontend", child: "templates", callCount: 1, errorCount: 0)
            #expect(try await store.dependencies(startNanos: t0, endNanos: t0 + 3000 * ms) == [toBackend, toTemplates])
            // Window holding only trace 1's backend span still links the whole trace.
            #expect(try await store.dependencies(startNanos: t0 + 11 * ms, endNanos: t0 + 11 * ms) == [toBackend])
            #expect(try await store.dependencies(startNanos: t0 + 500 * ms, endNanos: t0 + 3000 * ms) == [toTemplates])
            #expect(try await store.dependencies(startNanos: t0 + 1500 * ms, endNanos: t0 + 3000 * ms).isEmpty)
            // Summed over traces.
            let again = Self.searchFixture().filter { $0.traceID == tid(1) }.map { s -> Span in
                var s = s
                s.traceID = tid(100)
                return s
            }
            try await store.write(again)
            #expect(
                try await store.dependencies(startNanos: 0, endNanos: .max)
                    == [DependencyLink(parent: "frontend", child: "backend", callCount: 2, errorCount: 2), toTemplates])
        }
    }

    @Test(arguments: StorageKind.allCases)
    func retentionDeletesOnlyOldSpans(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            var spans: [Span] = []
            for i in UInt64(1)...12_000 {  // more than one SQLite delete chunk
                spans.append(span(trace: tid(i % 50 + 1), id: i, name: i <= 6_000 ? "old" : "new", service: i <= 6_000 ? "legacy" : "frontend", start: t0 + i * ms))
            }
            try await store.write(spans)
            let deleted = try await store.deleteSpans(startedBefore: t0 + 6_001 * ms)
            #expect(deleted == 6_000)
            #expect(try await store.stats().spanCount == 6_000)
            let remaining = try await store.traces(ids: (1...50).map { tid($0) }).flatMap { $0 }
            #expect(remaining.count == 6_000)
            #expect(remaining.allSatisfy { $0.startTimeNanos >= t0 + 6_001 * ms })
            #expect(try await store.serviceNames() == ["frontend"])
            #expect(try await store.operations(service: "legacy", kind: nil).isEmpty)
            #expect(try await store.deleteSpans(startedBefore: t0 + 6_001 * ms) == 0)
            // Writes after retention re-register pruned lookups.
            try await store.write([span(trace: tid(999), id: 1, name: "old", service: "legacy", start: t0 + 20_000 * ms)])
            #expect(try await store.serviceNames() == ["frontend", "legacy"])
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "legacy")) == [tid(999)])
        }
    }

    /// Quotes, backslashes, tabs, newlines, NUL and query fragments are stored and matched
    /// exactly, and never change a query's meaning (ClickHouse 18.16 has no bound parameters).
    @Test(arguments: StorageKind.allCases)
    func hostileValuesAreStoredAndMatchedExactly(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            // Names (service, operation, remote service) leave out NUL: the SQLite store binds
            // query text through GRDB, which stops at a NUL, so it cannot find such a name.
            let nasty = ["it's", "back\\slash\\", "tab\there", "new\nline\r", "' OR 1=1 --", "\u{FFFD}x", "ünï ✓", "%27+%00"]
            let values = nasty + ["nul\u{0}byte"]
            var spans: [Span] = []
            for (i, v) in values.enumerated() {
                let name = i < nasty.count ? v : "plain"
                spans.append(
                    span(
                        trace: tid(UInt64(i + 1)), id: UInt64(i + 1), name: name, service: name, start: t0 + UInt64(i) * ms,
                        attributes: [Attribute(v, .string(v)), Attribute("raw", .bytes([0, 0xff, 0x27, 0x5c]))], remote: name))
            }
            try await store.write(spans)
            for (i, v) in values.enumerated() {
                let id = tid(UInt64(i + 1))
                #expect(try await store.trace(id: id) == [spans[i]])
                #expect(try await store.findTraceIDs(TraceQuery(tags: [v: v])) == [id])
                #expect(try await store.findTraceIDs(TraceQuery(annotationTerms: [v])) == [id])
                guard i < nasty.count else { continue }
                #expect(try await store.findTraceIDs(TraceQuery(serviceName: v)) == [id])
                #expect(try await store.findTraceIDs(TraceQuery(remoteServiceName: v, operationName: v, tags: [v: v])) == [id])
                #expect(try await store.operations(service: v, kind: nil) == [Operation(name: v, kind: .server)])
                #expect(try await store.remoteServiceNames(service: v) == [v])
            }
            #expect(try await store.serviceNames() == (nasty + ["plain"]).sorted())
            #expect(try await store.findTraceIDs(TraceQuery(serviceName: "' OR '1'='1")).isEmpty)
            #expect(try await store.findTraceIDs(TraceQuery(tags: ["it's": "it"])).isEmpty)
        }
    }

    @Test(arguments: StorageKind.allCases)
    func closedStoreRejectsCalls(kind: StorageKind) async throws {
        if kind == .clickhouse && ClickHouseTestServer.skipReason != nil { return }
        let dir = try TempDir()
        defer { dir.cleanup() }
        let store = try await makeStore(kind, dataDirectory: dir.path)
        try await store.close()
        await #expect(throws: TraceStoreError.closed) { try await store.write([richSpan()]) }
    }
}
