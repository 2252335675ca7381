import Foundation
import Testing

@testable import MeshRunner

@Suite struct PortAllocatorTests {
    /// App ports come from below the ephemeral range, where no outgoing connection can take them
    /// between the pick and the app's bind (a CI run lost a demo to exactly that).
    @Test func appPortsComeFromBelowTheEphemeralRange() throws {
        // A machine whose ephemeral range leaves no room below it gets a kernel-picked port.
        let below = PortAllocator.ephemeralRange().flatMap { $0.0 - 10_000 >= 1000 ? 10_000..<$0.0 : nil }
        for _ in 0..<20 {
            let port = try PortAllocator.freePort()
            if let below { #expect(below.contains(port)) }
            #expect(PortAllocator.isFree(port, strictly: true))
        }
    }

    /// The local end of a connection makes its port unusable for a listener without
    /// SO_REUSEADDR on both sides: the strict check sees it as taken.
    @Test func aConnectionsLocalPortIsNotStrictlyFree() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(listener); close(client) }
        try #require(LoopbackAddress.with(port: 0, { bind(listener, $0, $1) }) == 0 && listen(listener, 1) == 0)
        let listening = try #require(Self.localPort(listener))
        try #require(LoopbackAddress.with(port: listening, { connect(client, $0, $1) }) == 0)
        let local = try #require(Self.localPort(client))
        #expect(!PortAllocator.isFree(local, strictly: true))
        #expect(!PortAllocator.isFree(listening))
    }

    static func localPort(_ fd: Int32) -> Int? {
        var addr = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return named == 0 ? Int(UInt16(bigEndian: addr.sin_port)) : nil
    }
}
