import NIOHTTP1
import Testing
@testable import SidecarProxy

struct LoopGuardTests {
    /// Only an outbound listener sees a loop: the mark means the request left a proxy and came
    /// back to one without passing an app (every inbound listener strips it).
    @Test func onlyAMarkedRequestOnAnOutboundListenerIsALoop() {
        #expect(LoopGuard.isLoop(direction: .outbound, marked: true))
        #expect(!LoopGuard.isLoop(direction: .outbound, marked: false))
        #expect(!LoopGuard.isLoop(direction: .inbound, marked: true))
        #expect(!LoopGuard.isLoop(direction: .gateway, marked: true))
    }

    @Test func outboundAndGatewayMarkTheRequestAndNameTheService() {
        let scan = RequestHeadScan(HTTPHeaders([("x-envoy-downstream-service-cluster", "caller"), ("x-meshtrace-via", "outbound")]))
        #expect(scan.loopMarked, "the scan sees the mark")
        #expect(!scan.keptFields.contains { $0.0.lowercased() == LoopGuard.header }, "and never forwards the incoming one")
        for direction in [ProxyDirection.outbound, .gateway] {
            var added = AddedHeaders()
            #expect(LoopGuard.addMarkers(direction: direction, serviceName: "frontend", scan: scan, into: &added) == "frontend")
            #expect(added.first(LoopGuard.header) == direction.rawValue)
            #expect(added.first("x-envoy-downstream-service-cluster") == "frontend")
        }
        var inbound = AddedHeaders()
        #expect(LoopGuard.addMarkers(direction: .inbound, serviceName: "backend", scan: scan, into: &inbound) == "caller")
        #expect(inbound.fields.isEmpty)
    }
}
