import Testing
import TailSampling
import TraceModel

/// The state machine with time as an argument: every test moves time itself.
@Suite struct TailSamplerTimingTests {
    let keepAll = [SamplingPolicy(name: "all", rule: .alwaysSample)]

    @Test func anIncompleteTraceIsDecidedAtDecisionWaitAndNotBefore() {
        var s = sampler(config(keepAll, wait: .seconds(10)))
        let id = traceID(1)
        // The root and the client are in; the server it called is not: not complete.
        var out = s.receive(Array(meshTrace(id).prefix(2)), now: at(0))
        #expect(out.decided.isEmpty)
        out = s.tick(now: at(9.999))
        #expect(out.decided.isEmpty)
        #expect(s.nextDeadline == at(10))
        out = s.tick(now: at(10))
        #expect(out.decidedIDs == [id])
        #expect(out.decided.first?.trigger == .decisionWait)
        #expect(out.decided.first?.spans.count == 2)
        #expect(s.bufferedTraces == 0 && s.bufferedSpans == 0)
    }

    @Test func theWaitCountsFromTheFirstSpanNotTheLast() {
        var s = sampler(config(keepAll, wait: .seconds(10)))
        let spans = meshTrace(traceID(1))
        _ = s.receive([spans[1]], now: at(0))
        _ = s.receive([spans[2]], now: at(8))  // still no root
        #expect(s.tick(now: at(9.5)).decided.isEmpty)
        #expect(s.tick(now: at(10)).decided.count == 1)
    }

    @Test func aCompleteTraceIsDecidedAtOnce() {
        var s = sampler(config(keepAll))
        let spans = meshTrace(traceID(7))
        // Arriving in any order: callee first, root last.
        #expect(s.receive([spans[2]], now: at(0)).decided.isEmpty)
        #expect(s.receive([spans[0]], now: at(0.5)).decided.isEmpty)  // client 2 still missing
        let out = s.receive([spans[1]], now: at(1))
        #expect(out.decided.first?.trigger == .complete)
        #expect(out.decided.first?.spans.count == 3)
    }

    @Test func anUnansweredClientSpanKeepsTheTraceWaiting() {
        var s = sampler(config(keepAll))
        let spans = meshTrace(traceID(7))
        // Root and its client are in, the callee's server span is not.
        #expect(s.receive([spans[0], spans[1]], now: at(0)).decided.isEmpty)
        #expect(s.bufferedTraces == 1)
    }

    @Test func earlyDecisionCanBeTurnedOff() {
        var c = config(keepAll)
        c.decideWhenComplete = false
        var s = sampler(c)
        #expect(s.receive(meshTrace(traceID(7)), now: at(0)).decided.isEmpty)
        #expect(s.tick(now: at(10)).decided.count == 1)
    }

    @Test func aReloadWithAShorterWaitDecidesWhatIsNowDue() throws {
        var s = sampler(config(keepAll, wait: .seconds(30)))
        _ = s.receive([meshTrace(traceID(1))[1]], now: at(0))
        _ = s.receive([meshTrace(traceID(2))[1]], now: at(5))
        let out = try s.reconfigure(config(keepAll, wait: .seconds(4)), now: at(6))
        #expect(out.decidedIDs == [traceID(1)])
        #expect(s.nextDeadline == at(9))
    }

    @Test func aReloadWithABrokenPolicyChangesNothing() {
        var s = sampler(config(keepAll))
        let broken = [SamplingPolicy(name: "bad", rule: .stringAttribute(key: "k", values: ["("], regex: true, invertMatch: false))]
        #expect(throws: PolicyError.self) { try s.reconfigure(config(broken), now: at(0)) }
        #expect(s.configuration.policies == keepAll)
    }

    @Test func flushDecidesEverythingWithWhatArrived() {
        var s = sampler(config(keepAll))
        _ = s.receive([meshTrace(traceID(1))[1], meshTrace(traceID(2))[0], meshTrace(traceID(2))[1]], now: at(0))
        let out = s.flush(now: at(1))
        #expect(out.decidedIDs == [traceID(1), traceID(2)])
        #expect(out.decided.allSatisfy { $0.trigger == .flush && $0.decision.isSampled })
        #expect(s.bufferedTraces == 0)
    }
}

@Suite struct TailSamplerMemoryTests {
    let keepNone = [SamplingPolicy(name: "errors", rule: .statusCode([.error]))]

    @Test func overflowDecidesTheOldestEarlyAndCountsIt() {
        var s = sampler(config(keepNone, numTraces: 3))
        var overflow: [TraceID] = []
        for n in 1...10 as ClosedRange<UInt64> {
            let out = s.receive([meshTrace(traceID(n))[1]], now: at(Double(n)))
            overflow += out.decided.filter { $0.trigger == .overflow }.map(\.traceID)
        }
        #expect(s.bufferedTraces == 3)
        #expect(overflow == (1...7).map { traceID($0) })
    }

    @Test func bufferedSpansAreBoundedToo() {
        var c = config(keepNone)
        c.maxBufferedSpans = 5
        var s = sampler(c)
        _ = s.receive(Array(meshTrace(traceID(1)).prefix(2)), now: at(0))
        _ = s.receive(Array(meshTrace(traceID(2)).prefix(2)), now: at(1))
        let out = s.receive(Array(meshTrace(traceID(3)).prefix(2)), now: at(2))
        #expect(out.decided.map(\.traceID) == [traceID(1)])
        #expect(out.decided.first?.trigger == .overflow)
        #expect(s.bufferedSpans == 4)
    }

    @Test func aRetriedBatchIsNotBufferedTwice() {
        var s = sampler(config(keepNone))
        let batch = Array(meshTrace(traceID(1)).prefix(2))
        _ = s.receive(batch, now: at(0))
        let again = s.receive(batch, now: at(1))
        #expect(again.duplicateSpans == 2)
        #expect(s.bufferedSpans == 2)
    }
}

@Suite struct TailSamplerLateSpanTests {
    let errorsOnly = [SamplingPolicy(name: "errors", rule: .statusCode([.error]))]

    @Test func lateSpansFollowTheDecision() {
        var s = sampler(config(errorsOnly))
        let kept = meshTrace(traceID(1), error: true)
        let droppedTrace = meshTrace(traceID(2))
        var out = s.receive(kept + droppedTrace, now: at(0))
        #expect(out.decision(for: traceID(1))?.isSampled == true)
        #expect(out.decision(for: traceID(2)) == .notSampled)

        var late = Span(traceID: traceID(1), spanID: spanID(9), parentSpanID: spanID(3), name: "compute", startTimeNanos: 1, durationNanos: 1, serviceName: "backend")
        out = s.receive([late], now: at(60))
        #expect(out.late.count == 1 && out.late[0].adjustedCount == 1 && out.late[0].spans == [late])

        // An error arriving after a "not sampled" decision does not bring the trace back.
        late.traceID = traceID(2)
        late.status = .error()
        out = s.receive([late], now: at(60))
        #expect(out.late.count == 1 && out.late[0].adjustedCount == nil)
        #expect(out.decided.isEmpty && s.bufferedTraces == 0)
    }

    @Test func aForgottenDecisionStartsANewWait() {
        var c = config(errorsOnly)
        c.nonSampledCacheSize = 1
        var s = sampler(c)
        _ = s.receive(meshTrace(traceID(1)) + meshTrace(traceID(2)), now: at(0))  // 1 is evicted by 2
        let out = s.receive([meshTrace(traceID(1))[1]], now: at(1))
        #expect(out.late.isEmpty)
        #expect(s.bufferedTraces == 1)
    }
}
