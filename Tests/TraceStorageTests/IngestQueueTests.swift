import Testing
import TraceModel

@testable import TraceStorage

@Suite("IngestQueue")
struct IngestQueueTests {
    func spans(trace: UInt64, count: Int) -> [Span] {
        (1...count).map { span(trace: tid(trace), id: UInt64($0), start: t0 + UInt64($0) * ms) }
    }

    @Test(arguments: StorageKind.allCases)
    func submitReturnsOnlyOnceReadable(kind: StorageKind) async throws {
        try await withStore(kind) { store, _ in
            let queue = IngestQueue(store: store, logger: testLogger)
            let writer = Task { await queue.run() }
            // Many concurrent submitters: each must find its own spans stored the moment submit returns.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for t in UInt64(1)...40 {
                    group.addTask {
                        let batch = self.spans(trace: t, count: 25)
                        try await queue.submit(batch)
                        let stored = try await store.trace(id: tid(t))
                        #expect(stored.count == 25)
                    }
                }
                try await group.waitForAll()
            }
            #expect(queue.depthSpans == 0)
            queue.shutdown()
            await writer.value
            #expect(try await store.stats().spanCount == 1_000)
        }
    }

    @Test func queueFullWhenCapacityExceeded() async throws {
        let store = BlockingStore()
        let queue = IngestQueue(store: store, capacitySpans: 100, maxSpansPerTransaction: 1_000, logger: testLogger)
        let writer = Task { await queue.run() }
        let first = Task { try await queue.submit(self.spans(trace: 1, count: 60)) }
        // The writer takes the first batch and blocks inside the store.
        #expect(await eventually { store.writeCalls == 1 })
        #expect(queue.depthSpans == 60)  // in flight still counts
        let second = Task { try await queue.submit(self.spans(trace: 2, count: 40)) }
        #expect(await eventually { queue.depthSpans == 100 })
        // Full: rejected at once, without waiting for the blocked store.
        await #expect(throws: IngestError.queueFull) { try await queue.submit(self.spans(trace: 3, count: 1)) }
        await #expect(throws: IngestError.queueFull) { try await queue.submit(self.spans(trace: 4, count: 101)) }
        store.release()
        try await first.value
        try await second.value
        #expect(queue.depthSpans == 0)
        try await queue.submit(spans(trace: 3, count: 1))  // room again
        #expect(try await store.trace(id: tid(3)).count == 1)
        queue.shutdown()
        await writer.value
    }

    @Test func groupCommitsQueuedSubmissions() async throws {
        let store = BlockingStore()
        let queue = IngestQueue(store: store, capacitySpans: 10_000, maxSpansPerTransaction: 50, logger: testLogger)
        let writer = Task { await queue.run() }
        let first = Task { try await queue.submit(self.spans(trace: 1, count: 10)) }
        #expect(await eventually { store.writeCalls == 1 })
        var waiting: [Task<Void, any Error>] = []
        for t in UInt64(2)...11 {  // 10 x 10 spans queue up behind the blocked write
            waiting.append(Task { try await queue.submit(self.spans(trace: t, count: 10)) })
        }
        #expect(await eventually { queue.depthSpans == 110 })
        store.release()
        try await first.value
        for w in waiting { try await w.value }
        // 10, then two transactions of at most 50 spans.
        #expect(store.batchSizes == [10, 50, 50])
        queue.shutdown()
        await writer.value
    }

    @Test func shutdownDrainsEverythingQueued() async throws {
        let store = BlockingStore()
        let queue = IngestQueue(store: store, capacitySpans: 10_000, maxSpansPerTransaction: 20, logger: testLogger)
        let writer = Task { await queue.run() }
        var submitters: [Task<Void, any Error>] = []
        for t in UInt64(1)...10 {
            submitters.append(Task { try await queue.submit(self.spans(trace: t, count: 10)) })
        }
        #expect(await eventually { queue.depthSpans == 100 })
        queue.shutdown()
        await #expect(throws: IngestError.shuttingDown) { try await queue.submit(self.spans(trace: 99, count: 1)) }
        store.release()
        await writer.value  // returns only after the queue is drained
        for s in submitters { try await s.value }
        #expect(try await store.stats().spanCount == 100)
        #expect(queue.depthSpans == 0)
    }

    @Test func storeFailureIsReportedToSubmitters() async throws {
        let store = BlockingStore()
        store.setFailing(true)
        store.release()
        let queue = IngestQueue(store: store, logger: testLogger)
        let writer = Task { await queue.run() }
        await #expect {
            try await queue.submit(self.spans(trace: 1, count: 3))
        } throws: { error in
            if case .storeFailed = error as? IngestError { return true }
            return false
        }
        store.setFailing(false)
        try await queue.submit(spans(trace: 2, count: 3))  // the writer keeps going
        #expect(queue.depthSpans == 0)
        queue.shutdown()
        await writer.value
    }
}
