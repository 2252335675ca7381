import Testing
import TraceModel
@testable import TraceWire

@Suite struct JSONParserTests {
    @Test func parsesAllValueKinds() throws {
        let v = try JSONParser.parse(bytes(#" {"a": [1, -2.5e3, true, false, null], "b": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", "c": {}} "#))
        #expect(v["a"]?[0]?.int64Value == 1)
        #expect(v["a"]?[1]?.doubleValue == -2500)
        #expect(v["a"]?[2] == .bool(true))
        #expect(v["a"]?[4]?.isNull == true)
        #expect(v["b"]?.stringValue == "x\"\\/\u{08}\u{0C}\n\r\té😀")
        #expect(v["c"] == .object([]))
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "{a:1}", "01", "1.", "-", "tru", "nul", "\"abc",
        "\"\\x\"", "\"\\u12\"", "\"a\u{01}b\"", "[1]]", "{\"a\":1}x", "[,1]", "{,}", "1e", "+1",
    ])
    func rejectsMalformed(_ input: String) {
        #expect(throws: WireError.self) { try JSONParser.parse(bytes(input)) }
    }

    @Test func errorNamesLineAndColumn() {
        do {
            _ = try JSONParser.parse(bytes("[1,\n  2 3]"))
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("line 2, column 5"), "\(error.message)")
            #expect(error.kind == .malformed)
        }
    }

    @Test func depthLimit() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        _ = try JSONParser.parse(bytes(ok))
        let deep = String(repeating: "[", count: 65) + String(repeating: "]", count: 65)
        #expect(throws: WireError("JSON nested deeper than 64 levels")) { try JSONParser.parse(bytes(deep)) }
        // A huge unterminated nest fails fast on depth, without recursion blowing the stack.
        let bomb = String(repeating: "{\"a\":", count: 100_000)
        #expect(throws: WireError("JSON nested deeper than 64 levels")) { try JSONParser.parse(bytes(bomb)) }
    }

    @Test func loneSurrogatesBecomeReplacementCharacters() throws {
        let v = try JSONParser.parse(bytes(#""\ud800x\udc00""#))
        #expect(v.stringValue == "\u{FFFD}x\u{FFFD}")
    }

    @Test func integersKeepPrecision() throws {
        let v = try JSONParser.parse(bytes("[9223372036854775807, -9223372036854775808, 9223372036854775808]"))
        #expect(v[0]?.int64Value == Int64.max)
        #expect(v[1]?.int64Value == Int64.min)
        #expect(v[2]?.int64Value == nil)
    }

    @Test func writerEscapesAndRoundTrips() throws {
        var w = JSONWriter()
        w.beginObject()
        w.member("s", "q\"b\\c\n\u{00}\u{1F}é😀\u{2028}")
        w.member("i", Int64.min)
        w.member("u", UInt64.max)
        w.member("d", 72.5)
        w.member("whole", 3.0)
        w.key("nan")
        w.append(double: .nan)
        w.member("b", false)
        w.key("arr")
        w.beginArray()
        w.append(int: 1)
        w.beginObject()
        w.endObject()
        w.appendNull()
        w.endArray()
        w.endObject()
        #expect(text(w.bytes) == #"{"s":"q\"b\\c\n\u0000\u001fé😀\#u{2028}","i":-9223372036854775808,"u":18446744073709551615,"d":72.5,"whole":3,"nan":null,"b":false,"arr":[1,{},null]}"#)
        let v = try JSONParser.parse(w.bytes)
        #expect(v["s"]?.stringValue == "q\"b\\c\n\u{00}\u{1F}é😀\u{2028}")
        #expect(v.jsonBytes == w.bytes)
    }

    /// The reader skips plain string bytes a word at a time; a quote, backslash or control byte
    /// must stop it wherever it falls in the word, including the last bytes of the body.
    @Test func stringsReadTheSameWhereverTheirSpecialBytesFall() async throws {
        var g = SplitMix64(seed: 0x57_4152)
        let alphabet = ["a", "Z", "0", " ", "~", "\"", "\\", "\n", "\u{1}", "\u{1F}", "\u{7F}", "é", "😀", "/"]
        for _ in 0..<3000 {
            await Task.yield()  // CPU-bound: hand the cooperative thread to the suite's waiting tasks each round
            let s = (0..<Int(g.next() % 40)).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] }.joined()
            var w = JSONWriter()
            w.beginArray()
            w.append(string: s)
            w.append(string: s + "x")
            w.endArray()
            let v = try JSONParser.parse(w.bytes)
            #expect(v[0]?.stringValue == s)
            #expect(v[1]?.stringValue == s + "x")
            // An unescaped control byte anywhere in a plain run is refused, and so is a body
            // that ends inside a string.
            let plain = Array(repeating: UInt8(ascii: "a"), count: Int(g.next() % 30) + 1)
            var raw = plain
            raw[Int(g.next() % UInt64(raw.count))] = UInt8(g.next() % 0x20)
            #expect(throws: WireError.self) { try JSONParser.parse([UInt8(ascii: "\"")] + raw + [UInt8(ascii: "\"")]) }
            #expect(throws: WireError.self) { try JSONParser.parse([UInt8(ascii: "\"")] + plain) }
            #expect(try JSONParser.parse([UInt8(ascii: "\"")] + plain + [UInt8(ascii: "\"")]).stringValue == String(decoding: plain, as: UTF8.self))
        }
    }

    /// The word-at-a-time search against a byte-at-a-time one, over random bytes biased toward
    /// the three it looks for and their neighbours (0x1F/0x20, 0x21/0x23, 0x5B/0x5D), at every
    /// offset and length.
    @Test func wordSearchFindsTheFirstSpecialByte() {
        var g = SplitMix64(seed: 0xF1_257)
        let near: [UInt8] = [0x00, 0x01, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x7F, 0x80, 0xA2, 0xDC, 0xFF, 0x61]
        for _ in 0..<20_000 {
            let count = Int(g.next() % 40)
            let density = g.next() % 8 + 1
            let input = (0..<count).map { _ in g.next() % density == 0 ? near[Int(g.next() % UInt64(near.count))] : UInt8(ascii: "a") &+ UInt8(g.next() % 26) }
            let from = count == 0 ? 0 : Int(g.next() % UInt64(count + 1))
            let expected = input[from...].firstIndex { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C } ?? count
            let found = input.withUnsafeBytes { JSONPlainBytes.firstSpecial($0, from: from) }
            #expect(found == expected, "\(input) from \(from)")
        }
    }

    @Test func fuzzParserNeverCrashes() {
        var g = SplitMix64(seed: 0x15_0A)
        let seedDoc = bytes(#"{"a":[1,2.5,"x\u00e9",{"b":null,"c":[true,false]}],"d":"\ud83d\ude00"}"#)
        var parsed = 0
        for _ in 0..<3000 {
            let input = Bool.random(using: &g) ? Fuzz.mutate(seedDoc, &g, interesting: Fuzz.jsonBytes) : Fuzz.randomBytes(&g)
            do {
                let v = try JSONParser.parse(input, maxDepth: 8)
                // Whatever parses must re-encode to JSON that parses to the same value.
                #expect(try JSONParser.parse(v.jsonBytes) == v)
                parsed += 1
            } catch {
                #expect(!error.message.isEmpty)
            }
        }
        #expect(parsed > 0)
    }
}

@Suite struct JSONWriterStorageTests {
    /// The one-step member writer against the two-step one, for values of every short length
    /// (the copy changes method at 8 and 16 bytes) with and without bytes to escape.
    @Test func memberInOneStepMatchesKeyThenValue() {
        var g = SplitMix64(seed: 0x3E3B)
        let alphabet = ["a", "Z", "7", "\"", "\\", "\n", "é", "😀", " "]
        var oneStep = JSONWriter(capacity: 1)
        var twoSteps = JSONWriter(capacity: 1)
        oneStep.beginObject()
        twoSteps.beginObject()
        for _ in 0..<2000 {
            let plain = g.next() % 2 == 0
            let value = (0..<Int(g.next() % 40)).map { _ in plain ? "x" : alphabet[Int(g.next() % UInt64(alphabet.count))] }.joined()
            let names: [StaticString] = ["a", "http.url", "guid:x-request-id", "istio.canonical_service", "node_id"]
            let name = names[Int(g.next() % UInt64(names.count))]
            oneStep.member(unescaped: name, value)
            twoSteps.key(unescaped: name)
            twoSteps.append(string: value)
        }
        oneStep.endObject()
        twoSteps.endObject()
        #expect(oneStep.bytes == twoSteps.bytes)
    }

    /// The writer keeps value semantics over its raw buffer: a copy diverges without touching the
    /// original, and growth past the first allocation keeps every byte.
    @Test func copiesAreIndependentAndGrowthKeepsBytes() {
        var a = JSONWriter(capacity: 1)
        a.beginArray()
        var b = a
        for i in 0..<500 { a.append(int: i) }
        b.append(string: "only in b")
        a.endArray()
        b.endArray()
        #expect(String(decoding: a.bytes, as: UTF8.self) == "[" + (0..<500).map(String.init).joined(separator: ",") + "]")
        #expect(String(decoding: b.bytes, as: UTF8.self) == #"["only in b"]"#)
    }
}
