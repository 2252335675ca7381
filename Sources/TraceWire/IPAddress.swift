import TraceModel

/// Text <-> bytes for the IP addresses Zipkin endpoints carry (proto3 has bytes, JSON has text).
public enum IPAddress {
    /// A dotted-quad IPv4 address as its 32 bits (network order when stored big-endian), with
    /// no allocation: the sidecar classifies every span's peer address.
    public static func ipv4Value(_ text: Substring) -> UInt32? {
        var result: UInt32 = 0
        var value: UInt32 = 0
        var digits = 0
        var dots = 0
        for c in text.utf8 {
            if c == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                result = result << 8 | value
                value = 0
                digits = 0
                dots += 1
            } else if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                value = value * 10 + UInt32(c - UInt8(ascii: "0"))
                digits += 1
                guard value <= 255, digits <= 3 else { return nil }
            } else {
                return nil
            }
        }
        guard digits > 0, dots == 3 else { return nil }
        return result << 8 | value
    }

    /// An IPv6 address (brackets allowed, as in `[::1]:8080`) as its 16 bytes.
    public static func ipv6Bytes(_ text: Substring) -> [UInt8]? {
        var t = text
        if t.hasPrefix("["), t.hasSuffix("]") { t = t.dropFirst().dropLast() }
        guard t.utf8.contains(UInt8(ascii: ":")) else { return nil }
        return ipv6Bytes(String(t))
    }

    package static func ipv4String<C: Collection>(_ bytes: C) -> String? where C.Element == UInt8 {
        guard bytes.count == 4 else { return nil }
        return bytes.map { String($0) }.joined(separator: ".")
    }

    package static func ipv4Bytes(_ text: String) -> [UInt8]? {
        ipv4Value(text[...]).map { v in [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    }

    /// RFC 5952 text: lower-case, leading zeros dropped, the longest run (>= 2) of zero groups as "::".
    package static func ipv6String<C: Collection>(_ bytes: C) -> String? where C.Element == UInt8 {
        guard bytes.count == 16 else { return nil }
        let b = Array(bytes)
        var groups = [UInt16]()
        for i in stride(from: 0, to: 16, by: 2) { groups.append(UInt16(b[i]) << 8 | UInt16(b[i + 1])) }
        var bestStart = -1, bestLen = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8 && groups[j] == 0 { j += 1 }
                if j - i > bestLen { bestStart = i; bestLen = j - i }
                i = j
            } else {
                i += 1
            }
        }
        if bestLen < 2 { bestStart = -1 }
        var out = ""
        i = 0
        while i < 8 {
            if i == bestStart {
                out += "::"
                i += bestLen
                continue
            }
            if !out.isEmpty && !out.hasSuffix(":") { out += ":" }
            out += String(groups[i], radix: 16)
            i += 1
        }
        return out
    }

    package static func ipv6Bytes(_ text: String) -> [UInt8]? {
        let s = Array(text.utf8)
        guard s.count >= 2, s.count <= 45 else { return nil }
        let colon = UInt8(ascii: ":")
        var double: Int? = nil
        for i in 0..<(s.count - 1) where s[i] == colon && s[i + 1] == colon {
            guard double == nil else { return nil }  // a second "::" (or ":::")
            double = i
        }
        func groups(_ part: ArraySlice<UInt8>) -> [UInt8]? {
            if part.isEmpty { return [] }
            let pieces = part.split(separator: colon, omittingEmptySubsequences: false)
            var out = [UInt8]()
            for (n, p) in pieces.enumerated() {
                if n == pieces.count - 1, p.contains(UInt8(ascii: ".")) {
                    guard let v4 = ipv4Bytes(String(decoding: p, as: UTF8.self)) else { return nil }
                    out += v4
                    continue
                }
                guard p.count >= 1, p.count <= 4, let v = Hex.parseUInt64(p) else { return nil }
                out.append(UInt8(truncatingIfNeeded: v >> 8))
                out.append(UInt8(truncatingIfNeeded: v))
            }
            return out
        }
        if let d = double {
            guard let h = groups(s[..<d]), let t = groups(s[(d + 2)...]), h.count + t.count <= 14 else { return nil }
            return h + [UInt8](repeating: 0, count: 16 - h.count - t.count) + t
        }
        guard let g = groups(s[...]), g.count == 16 else { return nil }
        return g
    }
}
