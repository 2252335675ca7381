/// SplitMix64: a tiny, fast, seedable generator. Seeded runs make fuzz tests and benchmarks
/// reproducible; `mix` is the same finaliser, used to spread ids with structured bits
/// (sampling by trace id, derived span ids).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.finalize(state)
    }

    /// The stateless mixing step applied to `value + golden ratio`.
    public static func mix(_ value: UInt64) -> UInt64 { finalize(value &+ 0x9E37_79B9_7F4A_7C15) }

    static func finalize(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
