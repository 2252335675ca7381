import Synchronization
import Testing
@testable import SidecarProxy

struct EndpointSetTests {
    final class TestClock: Sendable {
        let nanos = Mutex<UInt64>(1_000_000_000)
        func advance(seconds: UInt64) { nanos.withLock { $0 += seconds * 1_000_000_000 } }
        var read: @Sendable () -> UInt64 { { [self] in nanos.withLock { $0 } } }
    }

    func service(_ n: Int) -> UpstreamService {
        UpstreamService(name: "backend", endpoints: (0..<n).map { UpstreamEndpoint(host: "127.0.0.1", port: 9000 + $0) })
    }

    /// Envoy's `previous_hosts`: a retry goes to an endpoint not tried yet while one is left.
    @Test func retriesAvoidEndpointsAlreadyTried() {
        for policy in LoadBalancerPolicy.allCases {
            let set = EndpointSet(service: service(3), policy: policy, outliers: .init())
            for _ in 0..<200 {
                let first = set.choose()
                let second = set.choose(avoiding: [first])
                #expect(second != first)
                let third = set.choose(avoiding: [first, second])
                #expect(third != first && third != second)
                #expect(set.choose(avoiding: [0, 1, 2]) >= 0, "all tried: any endpoint")
                for i in [first, second, third] { set.release(i) }
            }
        }
    }

    @Test func anEjectedEndpointGetsNoRequestsUntilItsTimeIsUp() {
        let clock = TestClock()
        let set = EndpointSet(service: service(3), policy: .roundRobin, outliers: .init(), clock: clock.read)
        for _ in 1...5 { set.record(.response(503), endpoint: 2) }
        #expect(set.stats[2].ejected && set.stats[2].ejections == 1 && set.stats[2].errors == 5)
        var picked = Set<Int>()
        for _ in 0..<30 {
            let i = set.choose()
            picked.insert(i)
            set.release(i)
        }
        #expect(picked == [0, 1])
        clock.advance(seconds: 30)
        #expect(!set.stats[2].ejected)
        for _ in 0..<30 {
            let i = set.choose()
            picked.insert(i)
            set.release(i)
        }
        #expect(picked == [0, 1, 2])
    }

    /// Envoy's healthy panic threshold: below 50 % healthy, ejections are ignored.
    @Test func belowHalfHealthyEveryEndpointIsUsed() {
        var settings = OutlierDetector.Settings()
        settings.maxEjectionPercent = 100
        let set = EndpointSet(service: service(2), policy: .roundRobin, outliers: settings)
        for _ in 1...5 { set.record(.localFailure, endpoint: 0) }
        for _ in 1...5 { set.record(.localFailure, endpoint: 1) }
        #expect(set.stats.allSatisfy { $0.ejected })
        let picks = Set((0..<4).map { _ in set.choose() })
        #expect(picks == [0, 1])
    }

    @Test func activeCountsFollowChooseAndRelease() {
        let set = EndpointSet(service: service(2), policy: .leastRequest, outliers: .init())
        let a = set.choose()
        // least-request never picks the busy one when the other is idle and both are drawn.
        #expect(set.stats[a].active == 1 && set.stats[a].total == 1)
        set.release(a)
        set.release(a)  // a second release does not go negative
        #expect(set.stats.allSatisfy { $0.active == 0 })
    }
}
