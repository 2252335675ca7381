/// `x-request-id`: kept when the client sent one, otherwise a fresh UUIDv4, as Envoy does.
public enum RequestID {
    public static let header = "x-request-id"

    public static func generate<G: RandomNumberGenerator>(using generator: inout G) -> String {
        var high = generator.next()
        var low = generator.next()
        high = (high & ~UInt64(0xF000)) | 0x4000  // version 4
        low = (low & ~(UInt64(0xC) << 60)) | (UInt64(0x8) << 60)  // variant 10xx
        let hex = Hex.format(high) + Hex.format(low)
        let chars = Array(hex)
        return String(chars[0..<8]) + "-" + String(chars[8..<12]) + "-" + String(chars[12..<16]) + "-"
            + String(chars[16..<20]) + "-" + String(chars[20..<32])
    }

    public static func generate() -> String {
        var g = SystemRandomNumberGenerator()
        return generate(using: &g)
    }
}
