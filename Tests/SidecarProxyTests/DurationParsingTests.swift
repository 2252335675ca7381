import Testing

@testable import SidecarProxy

@Suite struct DurationParsingTests {
    @Test(arguments: [("250ms", Int64(250)), ("10s", 10_000), ("2m", 120_000), ("1h", 3_600_000), ("1.5", 1_500), ("0", 0)])
    func parsesDurations(text: String, millis: Int64) {
        #expect(ConfigurationLoader.parseDurationMillis(text) == millis)
    }

    /// Out-of-range values are refused, not converted with a trap.
    @Test(arguments: ["1e300s", "1e300", "9e18ms", "-1s", "nan", "inf", "s", ""])
    func refusesInvalidOrHugeDurations(text: String) {
        #expect(ConfigurationLoader.parseDurationMillis(text) == nil)
    }
}
