import TraceModel

/// The `probabilistic` policy's choice, bit for bit as OpenTelemetry's tail sampler makes it
/// (`internal/sampling/probabilistic.go`), so collectors of either kind with the same salt and
/// percentage keep the same traces: FNV-1a 64 over the salt's UTF-8 and then the 16 trace-id
/// bytes (big-endian), sampled when the hash is at most `threshold`.
public enum ProbabilisticThreshold {
    public static let defaultSalt = "default-hash-seed"

    /// FNV-1a, 64-bit (Go's `hash/fnv.New64a`).
    public static func hash(salt: String, traceID: TraceID) -> UInt64 {
        var h: UInt64 = 14_695_981_039_346_656_037
        for byte in salt.utf8 {
            h ^= UInt64(byte)
            h &*= 1_099_511_628_211
        }
        for word in [traceID.high, traceID.low] {
            for shift in stride(from: 56, through: 0, by: -8) {
                h ^= (word >> UInt64(shift)) & 0xFF
                h &*= 1_099_511_628_211
            }
        }
        return h
    }

    /// `calculateThreshold(percentage / 100)`: Go multiplies `MaxUint64` by the ratio in a
    /// `big.Float` of 64-bit precision (round to nearest even) and truncates to an integer.
    /// The same here with exact integer arithmetic. Percentages of 100 and more keep everything.
    public static func threshold(percentage: Double) -> UInt64 {
        let ratio = percentage / 100
        guard ratio > 0, ratio.isFinite else { return 0 }
        guard ratio < 1 else { return UInt64.max }
        // ratio = significand * 2^exponent, significand a 53-bit integer.
        let significand = UInt128(ratio.significandBitPattern | (ratio.isNormal ? 1 << 52 : 0))
        let exponent = Int(ratio.exponent) - 52
        var product = UInt128(UInt64.max) * significand  // < 2^117, exact
        var shift = -exponent  // the product is product / 2^shift; shift > 0 since ratio < 1
        let bits = 128 - product.leadingZeroBitCount
        if bits > 64 {
            // Round to 64 significant bits, ties to even, as big.Float does.
            let drop = bits - 64
            let half = UInt128(1) << (drop - 1)
            let remainder = product & ((UInt128(1) << drop) - 1)
            product >>= drop
            if remainder > half || (remainder == half && product & 1 == 1) { product += 1 }
            shift -= drop
        }
        if shift <= 0 { return product << -shift > UInt128(UInt64.max) ? UInt64.max : UInt64(product << -shift) }
        guard shift < 128 else { return 0 }
        let value = product >> shift
        return value > UInt128(UInt64.max) ? UInt64.max : UInt64(value)
    }

    public static func samples(traceID: TraceID, salt: String, threshold: UInt64) -> Bool {
        hash(salt: salt, traceID: traceID) <= threshold
    }
}
