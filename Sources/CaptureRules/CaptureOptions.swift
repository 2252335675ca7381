#if canImport(Glibc)
import Glibc
#endif

/// What `meshtrace iptables` captures, with Istio's `istio-iptables` defaults (`-p 15001
/// -z 15006 -u 1337 -i '*' -x "" -b '*' -d …`). The flags' text is parsed here, so that a bad
/// value is reported with the flag that carried it.
public struct CaptureOptions: Sendable, Equatable {
    /// The sidecar's own ports that inbound capture leaves alone by default: admin (15000),
    /// health (15021) and metrics (15090), as Istio's template excludes 15090, 15021 and 15020.
    public static let defaultExcludedInboundPorts = [15000, 15021, 15090]

    public enum Selection<Item: Sendable & Equatable>: Sendable, Equatable {
        /// `*`.
        case all
        /// A list; empty captures nothing.
        case only([Item])
    }

    public var inboundCapturePort = 15006
    public var outboundCapturePort = 15001
    public var proxyUID: UInt32 = 1337
    /// nil: the uid.
    public var proxyGID: UInt32?
    public var includeOutboundCIDRs: Selection<CIDR> = .all
    public var excludeOutboundCIDRs: [CIDR] = []
    public var excludeOutboundPorts: [Int] = []
    public var includeInboundPorts: Selection<Int> = .all
    /// Applies when every inbound port is captured (`*`), as Istio's `-d` does.
    public var excludeInboundPorts: [Int] = CaptureOptions.defaultExcludedInboundPorts

    public init() {}

    public var effectiveGID: UInt32 { proxyGID ?? proxyUID }

    // MARK: - Parsing flag text

    public struct Invalid: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(_ description: String) { self.description = description }
    }

    public static func port(_ text: String, flag: String) throws(Invalid) -> Int {
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty, trimmed.utf8.count <= 5, trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
              let port = Int(trimmed), (1...65535).contains(port)
        else { throw Invalid("--\(flag): expected a port 1-65535, got '\(text)'") }
        return port
    }

    public static func id(_ text: String, flag: String) throws(Invalid) -> UInt32 {
        let trimmed = text.trimmingSpaces
        guard !trimmed.isEmpty, trimmed.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let value = UInt32(trimmed) else {
            throw Invalid("--\(flag): expected a numeric id, got '\(text)'")
        }
        return value
    }

    /// A comma list of ports; empty text is an empty list.
    public static func ports(_ text: String, flag: String) throws(Invalid) -> [Int] {
        var out: [Int] = []
        for item in items(text) {
            let port = try port(item, flag: flag)
            if !out.contains(port) { out.append(port) }
        }
        return out
    }

    /// `*` or a comma list of ports.
    public static func portSelection(_ text: String, flag: String) throws(Invalid) -> Selection<Int> {
        text.trimmingSpaces == "*" ? .all : .only(try ports(text, flag: flag))
    }

    public static func cidrs(_ text: String, flag: String) throws(Invalid) -> [CIDR] {
        var out: [CIDR] = []
        for item in items(text) {
            if item == "*" { throw Invalid("--\(flag): '*' is not allowed here; list CIDRs such as 10.0.0.0/8") }
            guard let cidr = CIDR(item) else { throw Invalid("--\(flag): '\(item)' is not a CIDR (such as 10.0.0.0/8 or fd00::/8)") }
            if !out.contains(cidr) { out.append(cidr) }
        }
        return out
    }

    /// `*` or a comma list of CIDRs.
    public static func cidrSelection(_ text: String, flag: String) throws(Invalid) -> Selection<CIDR> {
        text.trimmingSpaces == "*" ? .all : .only(try cidrs(text, flag: flag))
    }

    /// Cross-flag rules.
    public func validate() throws(Invalid) {
        if inboundCapturePort == outboundCapturePort {
            throw Invalid("--inbound-capture-port and --outbound-capture-port are both \(inboundCapturePort); they must differ")
        }
    }

    private static func items(_ text: String) -> [String] {
        text.split(separator: ",", omittingEmptySubsequences: true).map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
    }
}

public enum IPFamily: String, Sendable, Equatable, CaseIterable {
    case v4
    case v6
}

/// An address range, `10.0.0.0/8` or `fd00::/8`; a bare address is a single host. The text is
/// the address as `inet_ntop` writes it, so `FD00:0::` and `fd00::` are one range.
public struct CIDR: Sendable, Equatable, CustomStringConvertible {
    public var family: IPFamily
    public var address: String
    public var prefixLength: Int

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        let host = String(parts[0])
        let family: IPFamily = host.contains(":") ? .v6 : .v4
        guard let canonical = Self.canonical(host, family: family) else { return nil }
        let maxLength = family == .v4 ? 32 : 128
        var length = maxLength
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 3, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }), let n = Int(digits), n <= maxLength else { return nil }
            length = n
        }
        self.family = family
        self.address = canonical
        self.prefixLength = length
    }

    public var description: String { "\(address)/\(prefixLength)" }

    /// In 127.0.0.0/8 or ::1: Istio keeps app-to-localhost traffic uncaptured unless such a range is included.
    public var isLoopback: Bool {
        family == .v4 ? address.hasPrefix("127.") : address == "::1"
    }

    static func canonical(_ host: String, family: IPFamily) -> String? {
        #if canImport(Glibc)
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        switch family {
        case .v4:
            var addr = in_addr()
            guard inet_pton(AF_INET, host, &addr) == 1, inet_ntop(AF_INET, &addr, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        case .v6:
            var addr = in6_addr()
            guard inet_pton(AF_INET6, host, &addr) == 1, inet_ntop(AF_INET6, &addr, &buffer, socklen_t(buffer.count)) != nil else { return nil }
        }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #else
        return nil
        #endif
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
