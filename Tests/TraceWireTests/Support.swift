import TraceModel
@testable import TraceWire

enum Fuzz {
    /// Up to `max` characters that need care on the wire: slashes, quotes, a backslash, é and
    /// an emoji.
    static func text(_ g: inout SplitMix64, max: Int) -> String {
        let alphabet = Array("ab/:. é😀\"\\")
        return String((0..<Int(g.next() % UInt64(max + 1))).map { _ in alphabet[Int(g.next() % UInt64(alphabet.count))] })
    }

    static func randomBytes(_ g: inout SplitMix64, maxCount: Int = 200) -> [UInt8] {
        let n = Int.random(in: 0...maxCount, using: &g)
        return (0..<n).map { _ in UInt8.random(in: 0...255, using: &g) }
    }

    /// Flips, truncations, insertions, deletions and duplications of a valid body.
    static func mutate(_ body: [UInt8], _ g: inout SplitMix64, interesting: [UInt8] = []) -> [UInt8] {
        var b = body
        let rounds = Int.random(in: 1...4, using: &g)
        for _ in 0..<rounds {
            guard !b.isEmpty else {
                b.append(UInt8.random(in: 0...255, using: &g))
                continue
            }
            let i = Int.random(in: 0..<b.count, using: &g)
            switch Int.random(in: 0..<7, using: &g) {
            case 0: b[i] ^= UInt8(1) << UInt8.random(in: 0...7, using: &g)
            case 1: b.removeSubrange(i...)
            case 2: b.insert(UInt8.random(in: 0...255, using: &g), at: i)
            case 3: b.remove(at: i)
            case 4:
                let j = min(b.count, i + Int.random(in: 1...16, using: &g))
                b.insert(contentsOf: Array(b[i..<j]), at: j)
            case 5:
                if !interesting.isEmpty { b[i] = interesting[Int.random(in: 0..<interesting.count, using: &g)] }
            default: b[i] = UInt8.random(in: 0...255, using: &g)
            }
        }
        return b
    }

    static let jsonBytes: [UInt8] = Array("{}[]\",:0123456789-.eE\\ntfu \n".utf8) + [0, 0x1F, 0xFF, 0xC3]

    /// Invariants every decoded span must satisfy, whatever the input.
    static func checkValid(_ batch: DecodedBatch) -> Bool {
        batch.spans.allSatisfy { s in
            s.traceID.isValid && s.spanID.value != 0 && s.parentSpanID?.value != 0
                && !s.serviceName.isEmpty && s.startTimeNanos <= UInt64.max - s.durationNanos
                && s.links.allSatisfy { $0.traceID.isValid }
        } && batch.truncatedValues >= 0
    }
}

enum Samples {
    static let trace = TraceID(high: 0x5b8e_fff7_9803_8103, low: 0xd269_b633_813f_c60c)

    /// A span using most of the model.
    static func richSpan(_ n: UInt64 = 1) -> Span {
        Span(
            traceID: trace,
            spanID: SpanID(0xeee1_9b7e_c3c1_b100 + n)!,
            parentSpanID: SpanID(0xeee1_9b7e_c3c1_b0ff),
            kind: .server,
            name: "GET /api/\(n)",
            startTimeNanos: 1_544_712_660_000_000_000 + n * 1000,
            durationNanos: 1_000_000_000,
            serviceName: "my.service",
            resource: [Attribute("host.name", .string("h1")), Attribute("process.pid", .int(42))],
            attributes: [
                Attribute("http.method", .string("GET")),
                Attribute("http.status_code", .int(500)),
                Attribute("sampled", .bool(true)),
                Attribute("ratio", .double(0.25)),
                Attribute("blob", .bytes([0, 0, 0x30, 0x39])),
                Attribute("list", .array([.string("a"), .int(2)])),
                Attribute("unicode", .string("é \"quoted\" \u{1F600} \n\t\u{01}")),
            ],
            events: [SpanEvent(timeNanos: 1_544_712_660_500_000_000, name: "retry", attributes: [Attribute("attempt", .int(2))])],
            links: [SpanLink(traceID: TraceID(high: 0, low: 7), spanID: SpanID(9)!, traceState: "a=b")],
            status: .error("boom"),
            traceState: "congo=t61rcWkgMzE",
            scope: InstrumentationScope(name: "my.library", version: "1.0.0")
        )
    }

    static func simpleSpan(_ n: UInt64, service: String = "svc") -> Span {
        Span(
            traceID: TraceID(high: 0, low: 0xabc),
            spanID: SpanID(n)!,
            kind: .client,
            name: "op\(n)",
            startTimeNanos: 1_700_000_000_000_000_000 + n * 1_000,
            durationNanos: 5_000,
            serviceName: service,
            attributes: [Attribute("k", .string("v\(n)"))]
        )
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func text(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }
