/// xoshiro256** seeded once from the system generator: ids and request ids on the request path
/// without a getrandom(2) call each. Not for secrets.
struct FastRandom: RandomNumberGenerator {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init() {
        var system = SystemRandomNumberGenerator()
        s0 = system.next() | 1
        s1 = system.next()
        s2 = system.next()
        s3 = system.next()
    }

    init(seed: UInt64) {
        var x = seed
        func splitmix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(&x) | 1
        s1 = splitmix(&x)
        s2 = splitmix(&x)
        s3 = splitmix(&x)
    }

    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }
}

/// Request ids without the intermediate arrays of `RequestID.generate` (it showed at 6% of the
/// proxy's CPU): one 36-byte string written in place. Same format: UUIDv4, lower-case.
enum FastRequestID {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    static func generate<G: RandomNumberGenerator>(using generator: inout G) -> String {
        var high = generator.next()
        var low = generator.next()
        high = (high & ~UInt64(0xF000)) | 0x4000  // version 4
        low = (low & ~(UInt64(0xC) << 60)) | (UInt64(0x8) << 60)  // variant 10xx
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var out = 0
            func put(_ value: UInt64, nibbles: Int, shift: Int) {
                var s = shift
                for _ in 0..<nibbles {
                    buffer[out] = digits[Int((value >> UInt64(s)) & 0xF)]
                    out += 1
                    s -= 4
                }
            }
            put(high, nibbles: 8, shift: 60)
            buffer[out] = UInt8(ascii: "-"); out += 1
            put(high, nibbles: 4, shift: 28)
            buffer[out] = UInt8(ascii: "-"); out += 1
            put(high, nibbles: 4, shift: 12)
            buffer[out] = UInt8(ascii: "-"); out += 1
            put(low, nibbles: 4, shift: 60)
            buffer[out] = UInt8(ascii: "-"); out += 1
            put(low, nibbles: 12, shift: 44)
            return out
        }
    }
}
