import NIOCore
import NIOPosix

/// Where a captured connection was going (its original destination) and, for inbound, the
/// source its hop to the app leaves from.
public struct CapturedDestination: Sendable, Equatable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    init?(_ address: SocketAddress) {
        guard let ip = address.ipAddress, let port = address.port else { return nil }
        self.init(host: ip, port: port)
    }

    public var isIPv6: Bool { host.contains(":") }

    /// `a.b.c.d` for `::ffff:a.b.c.d`, how a dual-stack listener sees an IPv4 peer.
    static func unmappedIPv4(_ ip: String) -> String? {
        let prefix = "::ffff:"
        guard ip.count > prefix.count, ip.lowercased().hasPrefix(prefix) else { return nil }
        let rest = String(ip.dropFirst(prefix.count))
        return rest.contains(".") && !rest.contains(":") ? rest : nil
    }

    /// A peer's address as the registry would write it.
    static func plainIP(_ address: SocketAddress?) -> String? {
        guard let ip = address?.ipAddress else { return nil }
        return unmappedIPv4(ip) ?? ip
    }

    /// `10.0.0.2:8080`, `[fd00::2]:8080`.
    public var address: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Inbound capture connects to the app's own address from 127.0.0.6 (or ::6), which the
    /// capture rules RETURN (`-o lo -s 127.0.0.6/32 -j RETURN`): from any other source, the
    /// proxy's connection to its pod IP would be redirected to inbound capture again.
    public var passthroughSource: String { isIPv6 ? "::6" : "127.0.0.6" }
}

extension ClientBootstrap {
    /// Binds the connection's source when the target names one.
    func bindingSource(of target: UpstreamTarget) -> ClientBootstrap {
        guard let source = target.sourceAddress, let address = try? SocketAddress(ipAddress: source, port: 0) else { return self }
        return bind(to: address)
    }
}
