import NIOCore
import NIOPosix
import Synchronization

/// What a capture listener refuses: connections whose original destination is one of this
/// sidecar's own listeners. Traffic redirected to the capture port that was already headed
/// there would come back to the same listener, and a connection to the metrics or admin port
/// should reach that port, not be proxied (Istio's `virtualOutbound-blackhole` does the same
/// for 15001). Refused connections are closed and counted.
final class CaptureGuard: Sendable {
    private let ports = Mutex<Set<Int>>([])

    /// The ports every listener of this sidecar bound.
    func setOwnPorts(_ bound: Set<Int>) {
        ports.withLock { $0 = bound }
    }

    /// Why `destination` is refused, or nil. `localHost` is the accepted socket's own address,
    /// which inbound REDIRECT makes the pod's address (the primary address of the interface).
    func refusal(_ destination: CapturedDestination, localHost: String?) -> String? {
        guard ports.withLock({ $0.contains(destination.port) }) else { return nil }
        // Rare (a connection to one of our ports): only then are the interfaces listed.
        guard Self.isLocal(destination.host, localHost: localHost) else { return nil }
        return "captured connection to the proxy's own port \(destination.address) refused (it would loop back into the proxy)"
    }

    static func isLocal(_ host: String, localHost: String?) -> Bool {
        if host == localHost || host.hasPrefix("127.") || host == "::1" || host == "0.0.0.0" || host == "::" { return true }
        let devices = (try? System.enumerateDevices()) ?? []
        return devices.contains { $0.address?.ipAddress == host }
    }
}
