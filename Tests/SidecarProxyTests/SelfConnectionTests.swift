import NIOCore
import NIOEmbedded
import Testing

@testable import SidecarProxy

@Suite struct SelfConnectionTests {
    /// A connection whose two ends are the same address met itself (no server): refused and
    /// closed. Any other connection passes untouched.
    @Test func aConnectionToItselfIsRefusedAndClosed() throws {
        let looped = EmbeddedChannel()
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 40_001)
        try looped.connect(to: address).wait()
        #expect(looped.isActive)
        looped.localAddress = address
        looped.remoteAddress = address
        #expect(throws: SelfConnection.Refused.self) { try SelfConnection.refuse(looped) }
        #expect(!looped.isActive)

        let normal = EmbeddedChannel()
        try normal.connect(to: address).wait()
        normal.localAddress = try SocketAddress(ipAddress: "127.0.0.1", port: 40_002)
        normal.remoteAddress = address
        try SelfConnection.refuse(normal)
        #expect(normal.isActive)
        _ = try? normal.finish()
    }
}
