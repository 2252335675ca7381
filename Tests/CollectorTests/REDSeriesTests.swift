import Foundation
import Testing
import TraceModel

@testable import Collector

@Suite struct REDSeriesTests {
    private let second: UInt64 = 1_000_000_000

    @Test func bucketsWeightedRequestsErrorsAndLatency() throws {
        var red = REDSeries(startNanos: t0, endNanos: t0 + 60 * second, stepNanos: 10 * second)
        #expect(red.bucketCount == 6)
        // Bucket 0: 4 requests of weight 10 (sampling 10%), one failing; durations 10, 20, 30, 40 ms.
        for (i, ms) in [10.0, 20, 30, 40].enumerated() {
            red.add(atNanos: t0 + UInt64(i) * second, weight: 10, outcome: i == 0 ? .serverError : .ok, durationMs: ms)
        }
        // Bucket 2: one request, weight 1.
        red.add(atNanos: t0 + 25 * second, weight: 1, outcome: .clientError, durationMs: 5)
        // Outside the window: ignored.
        red.add(atNanos: t0 - 1, weight: 1, outcome: .ok, durationMs: 1)
        red.add(atNanos: t0 + 61 * second, weight: 1, outcome: .ok, durationMs: 1)
        let p = red.points
        #expect(p.count == 6)
        #expect(p[0].t == Int64(t0 / 1_000_000))
        #expect(p[1].t == Int64(t0 / 1_000_000) + 10_000)
        #expect(p[0].requests == 40)
        #expect(p[0].rps == 4)
        #expect(p[0].errorRate == 0.25)
        #expect(p[0].p50Ms == 20)
        #expect(p[0].p95Ms == 40)
        #expect(p[1].requests == 0 && p[1].rps == 0 && p[1].errorRate == 0)
        #expect(p[1].p50Ms == nil && p[1].p95Ms == nil && p[1].p99Ms == nil)
        #expect(p[2].requests == 1 && p[2].errorRate == 1 && p[2].p99Ms == 5)
        let total = red.summary
        #expect(total.requests == 41)
        #expect(abs(total.rps - 41.0 / 60) < 1e-12)
        #expect(abs(total.errorRate - 11.0 / 41) < 1e-12)
    }

    @Test func emptyBucketsEncodeAsNullNotZeroLatency() throws {
        var red = REDSeries(startNanos: t0, endNanos: t0 + 2 * second, stepNanos: second)
        red.add(atNanos: t0, weight: 1, outcome: .ok, durationMs: 1.23456789)
        let json = String(decoding: try JSONEncoder().encode(red.points), as: UTF8.self)
        #expect(json.contains("\"p95Ms\":null"))
        #expect(json.contains("1.23457"))  // six significant digits
    }

    @Test func aWindowThatTheStepDoesNotDivideStillCoversItsEnd() {
        var red = REDSeries(startNanos: t0, endNanos: t0 + 25 * second, stepNanos: 10 * second)
        #expect(red.bucketCount == 3)
        red.add(atNanos: t0 + 25 * second, weight: 1, outcome: .ok, durationMs: 1)
        #expect(red.points[2].requests == 1)
        #expect(abs(red.summary.rps - 1.0 / 25) < 1e-12)  // over the window asked for
    }
}
