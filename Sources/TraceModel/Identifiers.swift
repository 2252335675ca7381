/// A 128-bit trace id. 64-bit ids (B3, old Zipkin) are widened with `high == 0`,
/// and print as 16 hex digits again, as Zipkin and Jaeger do.
public struct TraceID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64

    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// Accepts 16 or 32 hex digits (either case). All-zero ids are invalid per W3C and Zipkin.
    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        switch utf8.count {
        case 16:
            guard let low = Hex.parseUInt64(utf8) else { return nil }
            self.init(high: 0, low: low)
        case 32:
            guard let high = Hex.parseUInt64(utf8[0..<16]), let low = Hex.parseUInt64(utf8[16..<32]) else { return nil }
            self.init(high: high, low: low)
        default:
            return nil
        }
        guard isValid else { return nil }
    }

    /// 16 bytes (OTLP, Zipkin proto 128-bit) or 8 bytes (Zipkin proto 64-bit).
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 16 || bytes.count == 8 else { return nil }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for (i, b) in bytes.enumerated() {
            if bytes.count == 16 && i < 8 { high = high << 8 | UInt64(b) } else { low = low << 8 | UInt64(b) }
        }
        self.init(high: high, low: low)
        guard isValid else { return nil }
    }

    public var isValid: Bool { high != 0 || low != 0 }

    /// Canonical lower-hex: 16 digits for 64-bit ids, else 32.
    public var hex: String { high == 0 ? Hex.format(low) : Hex.format(high, low) }

    /// Always 32 digits (W3C traceparent, OTLP JSON).
    public var hex32: String { Hex.format(high, low) }

    /// Always 16 bytes, big-endian (OTLP).
    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            out[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
            out[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i)))
        }
        return out
    }

    public var description: String { hex }

    public static func < (a: TraceID, b: TraceID) -> Bool { (a.high, a.low) < (b.high, b.low) }

    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> TraceID {
        var id = TraceID(high: generator.next(), low: generator.next())
        if !id.isValid { id.low = 1 }
        return id
    }

    public static func random() -> TraceID {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }
}

/// A 64-bit span id. Zero is invalid.
public struct SpanID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public init?(_ value: UInt64) {
        guard value != 0 else { return nil }
        self.value = value
    }

    init(unchecked value: UInt64) { self.value = value }

    public init?(hex: some StringProtocol) {
        let utf8 = Array(hex.utf8)
        guard utf8.count == 16, let v = Hex.parseUInt64(utf8) else { return nil }
        self.init(v)
    }

    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 8 else { return nil }
        var v: UInt64 = 0
        for b in bytes { v = v << 8 | UInt64(b) }
        self.init(v)
    }

    public var hex: String { Hex.format(value) }

    public var bytes: [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * UInt64($0))) } }

    public var description: String { hex }

    public static func < (a: SpanID, b: SpanID) -> Bool { a.value < b.value }

    public static func random<G: RandomNumberGenerator>(using generator: inout G) -> SpanID {
        let v = generator.next()
        return SpanID(unchecked: v == 0 ? 1 : v)  // zero has probability 2^-64; 1 is a valid stand-in
    }

    public static func random() -> SpanID {
        var g = SystemRandomNumberGenerator()
        return random(using: &g)
    }
}
