import Testing
@testable import SidecarProxy

/// Envoy's outlier detection on a clock the test moves (nanoseconds), never the wall clock.
struct OutlierDetectorTests {
    let second: UInt64 = 1_000_000_000

    @Test func fiveConsecutive5xxEjectForTheBaseTimeThenTheEndpointReturns() {
        var d = OutlierDetector(hosts: 3)
        var now: UInt64 = 1000 * second
        for n in 1...4 {
            let ejected = d.record(.response(500), host: 1, now: now)
            #expect(!ejected, "ejected after \(n)")
        }
        let fifth = d.record(.response(500), host: 1, now: now)
        #expect(fifth)
        #expect(d.isEjected(1, now: now))
        now += 29 * second
        #expect(d.isEjected(1, now: now))
        now += 1 * second
        #expect(!d.isEjected(1, now: now), "back after base_ejection_time (30 s)")
    }

    @Test func aSuccessResetsTheCount() {
        var d = OutlierDetector(hosts: 3)
        for _ in 1...4 { d.record(.response(503), host: 0, now: 0) }
        d.record(.response(200), host: 0, now: 0)
        var early = false
        for _ in 1...4 { early = early || d.record(.response(503), host: 0, now: 0) }
        let fifth = d.record(.response(503), host: 0, now: 0)
        #expect(!early && fifth)
    }

    /// base_ejection_time × ejections, capped by max_ejection_time.
    @Test func ejectionTimeGrowsWithEachEjection() {
        var settings = OutlierDetector.Settings()
        settings.maxEjectionMillis = 70_000
        var d = OutlierDetector(hosts: 2, settings: settings)
        var now: UInt64 = second
        func eject() { for _ in 1...5 { d.record(.localFailure, host: 0, now: now) } }
        eject()
        #expect(d.hosts[0].ejections == 1)
        now += 30 * second
        #expect(!d.isEjected(0, now: now))
        eject()
        #expect(d.hosts[0].ejections == 2)
        now += 59 * second
        #expect(d.isEjected(0, now: now), "second ejection lasts 60 s")
        now += 1 * second
        #expect(!d.isEjected(0, now: now))
        eject()
        now += 70 * second
        #expect(!d.isEjected(0, now: now), "third would be 90 s: capped at 70")
    }

    /// 10 % of 3 endpoints is none, but Envoy always lets one be ejected; a second is refused.
    @Test func maxEjectionPercentAllowsAtLeastOne() {
        var d = OutlierDetector(hosts: 3)
        for _ in 1...5 { d.record(.response(503), host: 0, now: 0) }
        #expect(d.isEjected(0, now: 0))
        for _ in 1...5 { d.record(.response(503), host: 1, now: 0) }
        #expect(!d.isEjected(1, now: 0), "a second ejection would be 67 % > 10 %")
        var settings = OutlierDetector.Settings()
        settings.maxEjectionPercent = 70
        var wide = OutlierDetector(hosts: 3, settings: settings)
        for h in 0...2 { for _ in 1...5 { wide.record(.response(503), host: h, now: 0) } }
        #expect(wide.ejectedCount(now: 0) == 2)
    }

    /// Gateway failures (502/503/504, local failures) have their own count; a 500 breaks that
    /// run but still counts as a 5xx.
    @Test func gatewayFailuresCountSeparately() {
        var settings = OutlierDetector.Settings()
        settings.consecutive5xx = 0
        settings.consecutiveGatewayFailure = 3
        var d = OutlierDetector(hosts: 2, settings: settings)
        d.record(.localFailure, host: 0, now: 0)
        d.record(.response(502), host: 0, now: 0)
        d.record(.response(500), host: 0, now: 0)
        d.record(.response(504), host: 0, now: 0)
        #expect(!d.isEjected(0, now: 0))
        d.record(.localFailure, host: 0, now: 0)
        #expect(!d.isEjected(0, now: 0))
        d.record(.response(503), host: 0, now: 0)
        #expect(d.isEjected(0, now: 0))
        var off = OutlierDetector(hosts: 2, settings: { var s = settings; s.consecutiveGatewayFailure = 0; return s }())
        for _ in 1...20 { off.record(.localFailure, host: 0, now: 0) }
        #expect(!off.isEjected(0, now: 0), "0 turns both checks off")
    }
}
