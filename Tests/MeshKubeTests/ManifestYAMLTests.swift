import Testing
import TraceWire
import Yams

@testable import MeshKube

@Suite struct ManifestYAMLTests {
    @Test func readsYAML11ScalarsAsKubectlDoes() throws {
        let docs = try ManifestReader.read("""
            a: yes
            b: "yes"
            c: 0755
            d: 0x1F
            e: 1_000
            f: 0.5
            g: ~
            h: 2017-05-31T01:34:44Z
            i: .5
            j: 100m
            k: '15090'
            """)
        let v = try #require(docs.first?.value)
        #expect(v["a"] == .bool(true))
        #expect(v["b"] == .string("yes"))
        #expect(v["c"] == .number("493"))
        #expect(v["d"] == .number("31"))
        #expect(v["e"] == .number("1000"))
        #expect(v["f"] == .number("0.5"))
        #expect(v["g"] == .null)
        #expect(v["h"] == .string("2017-05-31T01:34:44Z"))
        #expect(v["i"] == .number("0.5"))
        #expect(v["j"] == .string("100m"))
        #expect(v["k"] == .string("15090"))
    }

    @Test func skipsEmptyDocumentsAndCountsFromOne() throws {
        let docs = try ManifestReader.read("---\n# only a comment\n---\na: 1\n---\n---\nb: 2\n")
        #expect(docs.map(\.value) == [.object([("a", .number("1"))]), .object([("b", .number("2"))])])
        #expect(docs.map(\.index) == [2, 4])
    }

    @Test func syntaxErrorNamesTheDocumentAndLine() {
        #expect {
            _ = try ManifestReader.read("a: 1\n---\nb: [1, 2\n")
        } throws: { error in
            guard let e = error as? ManifestError else { return false }
            return e.document == 2 && e.line != nil && e.message.contains("YAML syntax error")
        }
    }

    @Test func infinityIsRefusedWithItsField() {
        #expect {
            _ = try ManifestReader.read("spec:\n  ratio: .inf\n")
        } throws: { error in
            (error as? ManifestError)?.field == "spec.ratio"
        }
    }

    /// Whatever the writer prints, Yams (YAML 1.1, as kubectl) reads back as the same JSON.
    @Test(arguments: [
        "", "true", "no", "On", "15090", "0755", "1e3", "null", "~", "*", "&a", "- x", "-x", "--capture", "a: b", "a #b",
        "key:", " lead", "trail ", "multi\nline\n", "no newline\nat end", "two\n\n", "\ttab", "x\u{7}bell", "ünïcode",
        "$(POD_NAMESPACE).svc", "metadata.labels['app']", "a[0]", "x?y", "a*b&c", "a: ", "a:b", "{\"version\":1}", "<<", "=", "2024-01-01", "'quoted'", "\"dq\"",
        " first\nline", "http://x:9411", "a,b", "[x]", "@at", "`tick`", "%pct", "!bang", "|pipe", ">gt", "?q", "#hash",
    ])
    func stringsRoundTrip(_ text: String) throws {
        let value = JSONValue.object([("k", .string(text)), ("list", .array([.string(text)]))])
        let yaml = ManifestWriter.write([value])
        let back = try ManifestReader.read(yaml)
        #expect(back.first?.value == value, "wrote:\n\(yaml)")
    }

    @Test func nestedLayoutIsKubectls() {
        let value = JSONValue.object([
            ("metadata", .object([("name", .string("x")), ("labels", .object([]))])),
            ("spec", .object([("containers", .array([.object([("name", .string("a")), ("args", .strings(["-p", "15001", "*"]))])]))])),
        ])
        #expect(ManifestWriter.write([value]) == """
            metadata:
              name: x
              labels: {}
            spec:
              containers:
              - name: a
                args:
                - -p
                - "15001"
                - '*'

            """)
    }
}
