import Testing
import TraceModel
import TraceStorage

@testable import Collector

/// The demo's trace, healthy (`a`) or with backend not forwarding headers (`b`): then its call to
/// database starts another trace, and this one ends at backend.
private func demoTrace(_ trace: UInt64, broken: Bool, slowBackend: UInt64 = 0) -> [Span] {
    var spans = [
        sp(trace, 1, kind: .server, service: "gateway", start: t0, durationMs: 30 + slowBackend, name: "GET /api/reports/{id}"),
        sp(trace, 2, parent: 1, kind: .client, service: "gateway", start: t0 + ms, durationMs: 28 + slowBackend, name: "GET /api/reports/{id}"),
        sp(trace, 3, parent: 2, kind: .server, service: "frontend", start: t0 + 2 * ms, durationMs: 26 + slowBackend, name: "GET /api/reports/{id}"),
        sp(trace, 4, parent: 3, kind: .client, service: "frontend", start: t0 + 3 * ms, durationMs: 24 + slowBackend, name: "GET /report"),
        sp(trace, 5, parent: 4, kind: .server, service: "backend", start: t0 + 4 * ms, durationMs: 22 + slowBackend, name: "GET /report"),
        sp(trace, 6, parent: 5, kind: .internal, service: "backend", start: t0 + 5 * ms, durationMs: 20 + slowBackend, name: "compute-report"),
    ]
    if !broken {
        spans += [
            sp(trace, 7, parent: 5, kind: .client, service: "backend", start: t0 + 6 * ms, durationMs: 10, name: "GET /rows"),
            sp(trace, 8, parent: 7, kind: .server, service: "database", start: t0 + 7 * ms, durationMs: 8, name: "GET /rows"),
        ]
    }
    return spans
}

@Suite struct TraceDiffTests {
    @Test func missingDatabaseSpansAreOnlyInTheHealthyTrace() throws {
        let diff = TraceDiff(a: demoTrace(1, broken: false), b: demoTrace(2, broken: true, slowBackend: 5))
        let rows = diff.nodes.map { "\(String(repeating: " ", count: $0.depth))\($0.service): \($0.operation) \($0.presence)" }
        #expect(rows == [
            "gateway: GET /api/reports/{id} both",
            " gateway: GET /api/reports/{id} both",
            "  frontend: GET /api/reports/{id} both",
            "   frontend: GET /report both",
            "    backend: GET /report both",
            "     backend: compute-report both",
            "     backend: GET /rows onlyA",
            "      database: GET /rows onlyA",
        ])
        #expect(diff.nodes.map(\.parent) == [nil, 0, 1, 2, 3, 4, 4, 6])
        let backend = diff.nodes[4]
        #expect(backend.a.durationNanos == 22 * ms && backend.b.durationNanos == 27 * ms)
        #expect(diff.nodes[7].a.count == 1 && diff.nodes[7].b.count == 0)
        // Swapped, the same spans are only in B.
        let swapped = TraceDiff(a: demoTrace(2, broken: true), b: demoTrace(1, broken: false))
        #expect(swapped.nodes.filter { $0.presence == .onlyB }.map(\.service) == ["backend", "database"])
        #expect(!swapped.nodes.contains { $0.presence == .onlyA })
    }

    @Test func repeatedCallsMergeIntoOneNodeWithCounts() {
        func trace(_ id: UInt64, calls: Int, error: Bool = false) -> [Span] {
            [sp(id, 1, kind: .server, service: "api", durationMs: 100, name: "GET /")]
                + (0..<calls).map { i in
                    sp(id, 10 + UInt64(i), parent: 1, kind: .client, service: "api", start: t0 + UInt64(i) * ms, durationMs: 5, error: error, name: "SELECT")
                }
        }
        let diff = TraceDiff(a: trace(1, calls: 3), b: trace(2, calls: 1, error: true))
        #expect(diff.nodes.count == 2)
        let select = diff.nodes[1]
        #expect(select.presence == .both)
        #expect(select.a.count == 3 && select.b.count == 1)
        #expect(select.a.durationNanos == 15 * ms && select.b.durationNanos == 5 * ms)
        #expect(select.a.errors == 0 && select.b.errors == 1)
    }

    @Test func samePathsUnderDifferentParentsStaySeparate() {
        // "SELECT" under /a and under /b are different paths.
        let a = [
            sp(1, 1, kind: .server, service: "api", name: "root"),
            sp(1, 2, parent: 1, kind: .internal, service: "api", start: t0 + ms, name: "/a"),
            sp(1, 3, parent: 2, kind: .client, service: "api", start: t0 + 2 * ms, name: "SELECT"),
        ]
        let b = [
            sp(2, 1, kind: .server, service: "api", name: "root"),
            sp(2, 2, parent: 1, kind: .internal, service: "api", start: t0 + ms, name: "/b"),
            sp(2, 3, parent: 2, kind: .client, service: "api", start: t0 + 2 * ms, name: "SELECT"),
        ]
        let diff = TraceDiff(a: a, b: b)
        #expect(diff.nodes.map { "\($0.operation) \($0.presence)" } == ["root both", "/a onlyA", "SELECT onlyA", "/b onlyB", "SELECT onlyB"])
    }

    @Test func tenThousandDeepChainDoesNotRecurse() {
        var chain: [Span] = []
        for i in UInt64(1)...10_000 {
            let parent: UInt64? = i == 1 ? nil : i - 1
            chain.append(sp(1, i, parent: parent, kind: .internal, service: "s", start: t0 + i, name: "op"))
        }
        let diff = TraceDiff(a: chain, b: Array(chain.prefix(5_000)))
        #expect(diff.nodes.count == 10_000)
        #expect(diff.nodes.last?.depth == 9_999)
        #expect(diff.nodes.filter { $0.presence == TraceDiff.Presence.both }.count == 5_000)
    }

    @Test func orphansAndParentCyclesAreRootsOrLeftOut() {
        // Span 2's parent is missing: a second root. Spans 3 and 4 point at each other: no root reaches them.
        let spans = [
            sp(1, 1, kind: .server, service: "a", name: "root"),
            sp(1, 2, parent: 99, kind: .server, service: "b", start: t0 + ms, name: "orphan"),
            sp(1, 3, parent: 4, kind: .internal, service: "c", name: "x"),
            sp(1, 4, parent: 3, kind: .internal, service: "c", name: "y"),
        ]
        let diff = TraceDiff(a: spans, b: spans)
        #expect(diff.nodes.map(\.operation) == ["root", "orphan"])
        #expect(diff.nodes.allSatisfy { $0.parent == nil && $0.presence == .both })
    }
}

@Suite struct CompareAPITests {
    @Test func comparesTwoStoredTraces() async throws {
        let store = InMemoryTraceStore()
        try await store.write(demoTrace(1, broken: false) + demoTrace(2, broken: true))
        let api = CompareAPI(store: store)
        let body = try await api.compare(QueryParameters(query: "a=0000000000000001&b=2"))
        #expect(body.a.spans == 8 && body.b.spans == 6)
        #expect(body.a.rootService == "gateway" && body.a.durationMicros == 30_000)
        #expect(body.summary.onlyA == 2 && body.summary.onlyB == 0 && body.summary.both == 6)
        #expect(body.nodes.last?.service == "database" && body.nodes.last?.parent == 6)
        #expect(body.nodes.first?.parent == -1)
        for (query, status, words) in [
            ("a=1", 400, "'b'"), ("a=1&b=xyz", 400, "'b'"), ("a=1&b=3", 404, "trace 3"), ("b=1", 400, "'a'"),
        ] {
            do {
                _ = try await api.compare(QueryParameters(query: query))
                Issue.record("\(query) answered")
            } catch let failure as HTTPFailure {
                #expect(Int(failure.status.code) == status && failure.message.contains(words), "\(query): \(failure.message)")
            }
        }
    }

    @Test func typicalIsTheMedianTraceOfTheSameRootOperation() async throws {
        let store = InMemoryTraceStore()
        // Five peers of 10..50 ms (written out of order), the slow one of 500 ms, and a trace of another root.
        for (id, extra) in [(13, 20), (11, 0), (15, 40), (12, 10), (14, 30)] as [(UInt64, UInt64)] {
            try await store.write(demoTrace(id, broken: false, slowBackend: extra))
        }
        try await store.write(demoTrace(99, broken: false, slowBackend: 470))
        try await store.write([sp(50, 1, kind: .server, service: "gateway", durationMs: 31, name: "GET /other")])
        let api = CompareAPI(store: store)
        let end = Int64(t0 / ms) + 1_000
        let typical = try await api.typical("63", QueryParameters(query: "lookback=1h&endTs=\(end)"))
        #expect(typical.traceID == TraceID(high: 0, low: 13).hex)  // 50 ms: the middle of 30..70
        #expect(typical.candidates == 5 && typical.durationMicros == 50_000)
        #expect(typical.rootOperation == "GET /api/reports/{id}")
        // Alone in its window: nothing to compare with, said plainly.
        do {
            _ = try await api.typical(TraceID(high: 0, low: 50).hex, QueryParameters(query: "endTs=\(end)"))
            Issue.record("a typical trace without peers")
        } catch let failure as HTTPFailure {
            #expect(failure.status == .notFound && failure.message.contains("GET /other"))
        }
    }
}
