import TraceModel
import Testing
@testable import TraceWire

@Suite struct GzipTests {
    let payload = bytes(String(repeating: "{\"traceId\":\"0123456789abcdef\"},", count: 500))

    @Test func roundTrip() throws {
        let gz = Gzip.compress(payload)
        #expect(gz.count < payload.count / 5)
        #expect(gz[0] == 0x1f && gz[1] == 0x8b)
        #expect(try Gzip.decompress(gz, limit: 1 << 20) == payload)
    }

    @Test func concatenatedMembers() throws {
        let gz = Gzip.compress(bytes("hello ")) + Gzip.compress(bytes("world"))
        #expect(try Gzip.decompress(gz, limit: 100) == bytes("hello world"))
    }

    @Test func zlibStreamIsAutoDetected() throws {
        // zlib (RFC 1950) encoding of "hi": header 78 9c, deflate, adler32.
        let z: [UInt8] = [0x78, 0x9c, 0xcb, 0xc8, 0x04, 0x00, 0x01, 0x3b, 0x00, 0xd2]
        #expect(try Gzip.decompress(z, limit: 10) == bytes("hi"))
    }

    @Test func truncatedStream() {
        let gz = Gzip.compress(payload)
        for cut in [1, 10, gz.count / 2, gz.count - 1] {
            #expect(throws: WireError("truncated gzip stream")) { try Gzip.decompress(Array(gz[0..<cut]), limit: 1 << 20) }
        }
        #expect(throws: WireError("truncated gzip stream")) { try Gzip.decompress([], limit: 10) }
    }

    @Test func invalidData() {
        #expect(throws: WireError("invalid gzip data")) { try Gzip.decompress(bytes("not gzip at all"), limit: 100) }
        var gz = Gzip.compress(payload)
        gz[gz.count - 6] ^= 0xFF  // corrupt the CRC
        #expect(throws: WireError.self) { try Gzip.decompress(gz, limit: 1 << 20) }
    }

    @Test func bombOverTheLimitIsTooLarge() {
        let bomb = Gzip.compress([UInt8](repeating: 0, count: 10_000_000))
        #expect(bomb.count < 20_000)
        do {
            _ = try Gzip.decompress(bomb, limit: 1_000_000)
            Issue.record("expected tooLarge")
        } catch {
            #expect(error.kind == .tooLarge)
            #expect(error.message == "body exceeds 1000000 bytes after decompression")
        }
        // Exactly at the limit is fine.
        #expect((try? Gzip.decompress(Gzip.compress(payload), limit: payload.count))?.count == payload.count)
        #expect(throws: WireError.self) { try Gzip.decompress(Gzip.compress(payload), limit: payload.count - 1) }
    }

    @Test func fuzz() {
        var g = SplitMix64(seed: 0x6219)
        let gz = Gzip.compress(payload)
        var ok = 0
        for _ in 0..<2000 {
            let input = Bool.random(using: &g) ? Fuzz.mutate(gz, &g) : Fuzz.randomBytes(&g)
            do {
                let out = try Gzip.decompress(input, limit: 64 * 1024)
                #expect(out.count <= 64 * 1024)
                ok += 1
            } catch {
                #expect(error.message.contains("gzip") || error.kind == .tooLarge, "\(error.message)")
            }
        }
        #expect(ok > 0)  // some mutations (e.g. of the trailing padding-free header fields) still inflate
    }
}
