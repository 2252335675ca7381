import Testing

@testable import TraceStorage

@Suite("ClickHouse search windows")
struct SearchWindowsTests {
    let minute: UInt64 = 60 * 1_000_000_000

    @Test func widensSixteenfoldFromTheNewestMinuteToTheQuerysOwnBound() {
        let now: UInt64 = 1_000_000 * minute
        let bounds = SearchWindows.lowerBounds(min: now - 300 * minute, max: UInt64.max, now: now)
        #expect(bounds == [now - minute, now - 16 * minute, now - 256 * minute, now - 300 * minute])
    }

    @Test func aWindowNarrowerThanAMinuteIsOneSearch() {
        #expect(SearchWindows.lowerBounds(min: 100, max: 100 + minute, now: 200 + minute) == [100])
        #expect(SearchWindows.lowerBounds(min: 100, max: 100, now: 200) == [100])
    }

    @Test func narrowsFromTheQuerysUpperBoundWhenItIsBeforeNow() {
        let bounds = SearchWindows.lowerBounds(min: 0, max: 100 * minute, now: 1_000 * minute)
        #expect(bounds == [99 * minute, 84 * minute, 0])
    }

    @Test func aWindowEntirelyInTheFutureIsOneSearch() {
        #expect(SearchWindows.lowerBounds(min: 500 * minute, max: 900 * minute, now: 10 * minute) == [500 * minute])
    }

    @Test func theWholeTimelineEndsInFewSearches() {
        let now: UInt64 = 1_800_000_000 * 1_000_000_000  // 2027
        let bounds = SearchWindows.lowerBounds(min: 0, max: UInt64.max, now: now)
        #expect(bounds.last == 0)
        #expect(bounds.count <= 9)
        #expect(zip(bounds, bounds.dropFirst()).allSatisfy { $0 > $1 })
    }
}
