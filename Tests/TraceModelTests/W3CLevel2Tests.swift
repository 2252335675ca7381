import Testing
import TraceModel

/// W3C Trace Context Level 2 (https://www.w3.org/TR/trace-context-2/), case by case from the
/// spec's text: §3.2 traceparent (fields, lower-case hex, all-zero ids, version ff, higher
/// versions, trace-flags with the random-trace-id flag), §3.3 tracestate (several fields, OWS,
/// empty members, 32 members, key and value syntax, one entry per key, the 512-character limit
/// and how to cut), §4 processing (an invalid traceparent takes tracestate with it).
@Suite struct W3CLevel2Tests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let parentID = "00f067aa0ba902b7"
    static let valid = "00-\(traceID)-\(parentID)-01"

    func extract(_ fields: [(String, String)]) -> TraceContext? {
        W3CTraceContext.extract(HeaderList(fields))
    }

    @Test func traceparentFieldsAndFlags() throws {
        let c = try #require(W3CTraceContext.parse(Self.valid))
        #expect(c.traceID.hex32 == Self.traceID && c.spanID.hex == Self.parentID && c.sampled == true && !c.randomTraceID)
        // trace-flags is a bit field: 09 is sampled (plus an unknown bit), 02 random, not sampled.
        #expect(W3CTraceContext.parse("00-\(Self.traceID)-\(Self.parentID)-09")?.sampled == true)
        let random = try #require(W3CTraceContext.parse("00-\(Self.traceID)-\(Self.parentID)-02"))
        #expect(random.sampled == false && random.randomTraceID)
        #expect(W3CTraceContext.parse("00-\(Self.traceID)-\(Self.parentID)-03")?.randomTraceID == true)
    }

    @Test func invalidTraceparentsAreIgnored() {
        let bad = [
            "", "00", Self.valid.dropLast().description,  // too short
            "00-\(Self.traceID)-\(Self.parentID)-01-00",  // version 00 is exactly 55 characters
            "00-\(Self.traceID)-\(Self.parentID)-011",
            "ff-\(Self.traceID)-\(Self.parentID)-01",  // version ff is forbidden
            "0-\(Self.traceID)-\(Self.parentID)-011", "000-\(Self.traceID)-\(Self.parentID)-01".dropLast().description,
            "0g-\(Self.traceID)-\(Self.parentID)-01", ".0-\(Self.traceID)-\(Self.parentID)-01",
            "00-00000000000000000000000000000000-\(Self.parentID)-01",  // all-zero trace-id
            "00-\(Self.traceID)-0000000000000000-01",  // all-zero parent-id
            "00-\(Self.traceID.uppercased())-\(Self.parentID)-01",  // HEXDIGLC: lower case only
            "00-\(Self.traceID)-\(Self.parentID.uppercased())-01", "00-\(Self.traceID)-\(Self.parentID)-0A",
            "00-\(Self.traceID.dropLast())g-\(Self.parentID)-01", "00-\(Self.traceID)-\(Self.parentID.dropLast())g-01",
            "00-\(Self.traceID)-\(Self.parentID)-0g", "00_\(Self.traceID)-\(Self.parentID)-01",
            "00-\(Self.traceID)_\(Self.parentID)-01", "00-\(Self.traceID)-\(Self.parentID)_01",
            "00-\(Self.traceID)1-\(Self.parentID)-01".dropLast().description, "00-\(Self.traceID)-\(Self.parentID)1-1",
        ]
        for value in bad {
            #expect(W3CTraceContext.parse(value) == nil, "\(value)")
        }
    }

    @Test func optionalWhitespaceAroundTheValue() throws {
        for value in [" \(Self.valid)", "\(Self.valid) ", "\t\(Self.valid)\t ", " \t \(Self.valid)"] {
            let c = try #require(W3CTraceContext.parse(value), "\(value)")
            #expect(c.traceID.hex32 == Self.traceID)
        }
        #expect(W3CTraceContext.parse("00 -\(Self.traceID)-\(Self.parentID)-01") == nil, "whitespace inside is not OWS")
    }

    /// §3.2.4: a higher version is parsed as far as version 00 defines it: trace-id, parent-id
    /// and the flags' known bits, then either the end or a dash.
    @Test func higherVersionsAreReadAsFarAsUnderstood() throws {
        let future = try #require(W3CTraceContext.parse("cc-\(Self.traceID)-\(Self.parentID)-01-what-the-future-will-be-like"))
        #expect(future.traceID.hex32 == Self.traceID && future.sampled == true)
        #expect(W3CTraceContext.parse("cc-\(Self.traceID)-\(Self.parentID)-03")?.randomTraceID == true)
        #expect(W3CTraceContext.parse("cc-\(Self.traceID)-\(Self.parentID)-01.what-the-future-will-not-be-like") == nil)
        #expect(W3CTraceContext.parse("cc-\(Self.traceID)-\(Self.parentID)") == nil, "shorter than 55")
        // Written back as version 00 with only the flags it knows.
        #expect(W3CTraceContext.format(future).hasPrefix("00-\(Self.traceID)-\(Self.parentID)-0"))
    }

    @Test func formatWritesSampledAndRandomFlagsOnly() throws {
        var c = try #require(W3CTraceContext.parse("00-\(Self.traceID)-\(Self.parentID)-ff"))
        #expect(W3CTraceContext.format(c) == "00-\(Self.traceID)-\(Self.parentID)-03", "unknown flags are set to zero")
        c.sampled = false
        #expect(W3CTraceContext.format(c).hasSuffix("-02"))
        c.randomTraceID = false
        #expect(W3CTraceContext.format(c).hasSuffix("-00"))
        #expect(c.child(spanID: SpanID(7)!, sampled: true).randomTraceID == false)
        c.randomTraceID = true
        #expect(c.child(spanID: SpanID(7)!, sampled: true).randomTraceID, "a child keeps its trace id's flag")
    }

    /// Two traceparent fields combine into a value that is not a traceparent: restart.
    @Test func aDuplicatedTraceparentIsIgnored() {
        #expect(extract([("traceparent", Self.valid), ("traceparent", Self.valid)]) == nil)
        #expect(extract([("traceparent", Self.valid), ("TraceParent", "00-\(Self.traceID)-\(Self.parentID)-00")]) == nil)
        #expect(extract([("TRACEPARENT", Self.valid)]) != nil, "the name in any case")
    }

    @Test func tracestateNeedsAValidTraceparent() {
        #expect(extract([("tracestate", "foo=1")]) == nil)
        #expect(extract([("traceparent", "00-\(Self.traceID)-0000000000000000-01"), ("tracestate", "foo=1")]) == nil)
        // A bad tracestate never voids the traceparent.
        let c = extract([("traceparent", Self.valid), ("tracestate", "FOO=1")])
        #expect(c != nil && c?.traceState == nil)
    }

    @Test func severalTracestateFieldsAreOneList() {
        let c = extract([("traceparent", Self.valid), ("tracestate", "foo=1"), ("Tracestate", "bar=2, baz=3")])
        #expect(c?.traceState == "foo=1,bar=2,baz=3")
        // A key in two fields is still one key given twice.
        #expect(extract([("traceparent", Self.valid), ("tracestate", "foo=1"), ("tracestate", "foo=2")])?.traceState == nil)
        // An empty field is accepted and adds nothing.
        #expect(extract([("traceparent", Self.valid), ("tracestate", ""), ("tracestate", "foo=1")])?.traceState == "foo=1")
        #expect(extract([("traceparent", Self.valid), ("tracestate", " ")])?.traceState == nil)
    }

    @Test func optionalWhitespaceAndEmptyMembers() {
        #expect(W3CTraceState.normalized("foo=1 \t , \t bar=2, \t baz=3") == "foo=1,bar=2,baz=3")
        #expect(W3CTraceState.normalized("foo=1,,bar=2, ,") == "foo=1,bar=2")
        #expect(W3CTraceState.normalized(",") == nil)
        #expect(W3CTraceState.normalized("foo=1") == "foo=1")
        #expect(W3CTraceState.normalized("foo= 1") == "foo= 1", "leading spaces are part of the value")
        #expect(W3CTraceState.normalized("foo=1 ") == "foo=1", "trailing spaces are OWS")
    }

    @Test func thirtyTwoMembersAtMost() {
        let members = (0..<33).map { "k\($0)=v" }
        #expect(W3CTraceState.normalized(members.prefix(32).joined(separator: ",")) == members.prefix(32).joined(separator: ","))
        #expect(W3CTraceState.normalized(members.joined(separator: ",")) == nil)
        #expect(W3CTraceState.normalized(members.prefix(32).joined(separator: ",") + ",,, ") != nil, "empty members do not count")
    }

    @Test func keySyntaxIncludingMultiTenantKeys() {
        let valid = [
            "foo", "a", "0tenant@sys", "t@s", "foo_bar-baz*qux/1", String(repeating: "a", count: 256),
            String(repeating: "t", count: 241) + "@" + String(repeating: "s", count: 14), "fw529a3039@dt",
        ]
        for key in valid {
            #expect(W3CTraceState.normalized("\(key)=1") == "\(key)=1", "\(key)")
        }
        let invalid = [
            "FOO", "foo.bar", "foo bar", "1foo", "_foo", "foo@", "@foo", "foo@@bar", "foo@bar@baz", "foo@1bar", "foo@Bar",
            String(repeating: "a", count: 257), String(repeating: "t", count: 242) + "@s", "t@" + String(repeating: "s", count: 15),
            "", "fo\u{e9}",
        ]
        for key in invalid {
            #expect(W3CTraceState.normalized("\(key)=1,bar=2") == nil, "\(key)")
        }
    }

    @Test func valueSyntax() {
        let excluded: Set<UInt8> = [UInt8(ascii: ","), UInt8(ascii: "="), UInt8(ascii: " ")]
        let bytes: [UInt8] = (UInt8(0x20)...UInt8(0x7E)).filter { !excluded.contains($0) }
        let printable = String(decoding: bytes, as: UTF8.self)
        #expect(W3CTraceState.normalized("foo=" + printable) == "foo=" + printable)
        #expect(W3CTraceState.normalized("foo=" + String(repeating: "v", count: 256)) != nil)
        for bad in ["foo=", "foo=bar=baz", "foo=\tbar", "foo=b\u{7F}", "foo=" + String(repeating: "v", count: 257), "foo=caf\u{e9}", "foo"] {
            #expect(W3CTraceState.normalized(bad + ",bar=2") == nil, "\(bad)")
        }
    }

    /// §3.3.1.5: past the limit, whole members go: those over 128 characters first, then from the end.
    @Test func longListsAreCutByWholeMembers() throws {
        let long = "big=" + String(repeating: "x", count: 200)
        // 32 members in all (a valid list), over 512 characters.
        let small = (0..<31).map { "k\($0)=" + String(repeating: "v", count: 20) }
        let list = ([long] + small).joined(separator: ",")
        let cut = try #require(W3CTraceState.normalized(list))
        #expect(cut.utf8.count <= 512)
        #expect(!cut.contains("big="), "the long member goes first")
        #expect(cut.hasPrefix("k0="), "then members from the end")
        let kept = cut.split(separator: ",")
        #expect(Array(small.prefix(kept.count)) == kept.map(String.init))
    }

    /// What a sidecar sends on: the incoming list, minus what the spec lets it drop.
    @Test func extractKeepsTheNormalizedList() {
        let c = extract([("traceparent", Self.valid), ("tracestate", "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE")])
        #expect(c?.traceState == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
        var out = HeaderList()
        if let c { W3CTraceContext.inject(c, into: &out) }
        #expect(out.first("tracestate") == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    }
}
