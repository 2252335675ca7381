import Testing
import TraceModel
@testable import TraceAnalysis

/// Crafted traces shaped like the sidecars' spans: gateway → frontend → backend → database.
struct Crafted {
    var trace = TraceID(high: 0xAAAA, low: 1)
    var next: UInt64 = 1
    var spans: [Span] = []
    static let ms: UInt64 = 1_000_000
    static let t0: UInt64 = 1_700_000_000_000_000_000

    mutating func span(_ service: String, _ kind: SpanKind, parent: SpanID?, start: UInt64, end: UInt64,
                       attrs: [String: AttributeValue] = [:], traceID: TraceID? = nil, traceState: String? = nil) -> SpanID {
        let id = SpanID(next) ?? SpanID.random()
        next += 1
        var attributes = [Attribute("sampling.rate", .double(1)), Attribute("response_flags", .string("-"))]
        for (k, v) in attrs.sorted(by: { $0.key < $1.key }) {
            attributes.removeAll { $0.key == k }
            attributes.append(Attribute(k, v))
        }
        spans.append(Span(
            traceID: traceID ?? trace, spanID: id, parentSpanID: parent, kind: kind, name: "GET /x",
            startTimeNanos: Self.t0 + start * Self.ms, durationNanos: (end - start) * Self.ms, serviceName: service,
            attributes: attributes, traceState: traceState))
        return id
    }

    /// A whole, healthy request through the demo's path; `tweak` adjusts attributes per hop.
    mutating func healthy(requestID: String = "r1", at base: UInt64 = 0) {
        let inj: AttributeValue = .string("w3c,b3multi")
        let gs = span("gateway", .server, parent: nil, start: base, end: base + 100, attrs: ["guid:x-request-id": .string(requestID)])
        let gc = span("gateway", .client, parent: gs, start: base, end: base + 100, attrs: ["guid:x-request-id": .string(requestID), "peer.service": .string("frontend")])
        var previous = gc
        var t = base + 1
        for (service, peer) in [("frontend", "backend"), ("backend", "database")] {
            let s = span(service, .server, parent: previous, start: t, end: 100 + base - (t - base),
                         attrs: ["guid:x-request-id": .string(requestID), "meshtrace.propagation.injected": inj,
                                 "meshtrace.propagation.extracted": inj, "downstream_cluster": .string(previous == gc ? "gateway" : "frontend")])
            let c = span(service, .client, parent: s, start: t + 1, end: 100 + base - (t - base) - 1,
                         attrs: ["guid:x-request-id": .string(requestID), "meshtrace.propagation.extracted": inj, "peer.service": .string(peer)])
            previous = c
            t += 2
        }
        _ = span("database", .server, parent: previous, start: t, end: 100 + base - (t - base),
                 attrs: ["guid:x-request-id": .string(requestID), "meshtrace.propagation.injected": inj, "downstream_cluster": .string("backend")])
    }
}

func kinds(_ findings: [Finding]) -> [FindingKind] { findings.map(\.kind) }

struct TraceAnalyzerTests {
    @Test func healthyTracesHaveNoFindings() {
        var c = Crafted()
        c.healthy()
        c.trace = TraceID(high: 0xAAAA, low: 2)
        c.healthy(requestID: "r2", at: 200)
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(findings.isEmpty, "\(findings)")
    }

    @Test func contextDroppedNamesTheServiceAndTheHeaders() throws {
        var c = Crafted()
        // gateway → frontend → backend SERVER; backend's call to database starts a new trace.
        let inj: AttributeValue = .string("w3c,b3multi")
        let gs = c.span("gateway", .server, parent: nil, start: 0, end: 100)
        let gc = c.span("gateway", .client, parent: gs, start: 0, end: 100, attrs: ["peer.service": .string("frontend")])
        let fs = c.span("frontend", .server, parent: gc, start: 1, end: 99, attrs: ["meshtrace.propagation.injected": inj])
        let fc = c.span("frontend", .client, parent: fs, start: 2, end: 98, attrs: ["meshtrace.propagation.extracted": inj, "peer.service": .string("backend")])
        _ = c.span("backend", .server, parent: fc, start: 3, end: 97, attrs: ["meshtrace.propagation.injected": inj])
        let other = TraceID(high: 0xBBBB, low: 9)
        let bc = c.span("backend", .client, parent: nil, start: 5, end: 90, attrs: ["meshtrace.propagation.extracted": .string("none"), "peer.service": .string("database")], traceID: other)
        _ = c.span("database", .server, parent: bc, start: 6, end: 89, traceID: other)

        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(kinds(findings) == [.contextDropped], "\(findings)")
        let f = try #require(findings.first)
        #expect(f.service == "backend")
        #expect(f.severity == .error)
        #expect(f.evidence.count == 1 && f.evidence.outOf == 1)
        #expect(f.evidence.traceIDs == [other.hex])
        for header in ["traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-request-id"] {
            #expect(f.fix.contains(header), "\(f.fix)")
        }
        #expect(f.fix.hasPrefix("In backend,"))
    }

    @Test func aRootClientOutsideAnyInboundRequestIsABackgroundJobNotADrop() {
        var c = Crafted()
        c.healthy()
        // backend calls database at t=500 ms, long after its only inbound request ended.
        let other = TraceID(high: 0xCCCC, low: 1)
        let bc = c.span("backend", .client, parent: nil, start: 500, end: 510, attrs: ["peer.service": .string("database")], traceID: other)
        _ = c.span("database", .server, parent: bc, start: 501, end: 509, traceID: other)
        #expect(TraceAnalyzer.analyze(spans: c.spans).isEmpty)
    }

    @Test func orphanSpansNameTheCallerWhoseSpansNeverArrived() throws {
        var c = Crafted()
        let missing = SpanID(0xDEAD)
        _ = c.span("payments", .server, parent: missing, start: 0, end: 10, attrs: ["downstream_cluster": .string("checkout")])
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(kinds(findings) == [.orphanSpans], "\(findings)")
        let f = try #require(findings.first)
        #expect(f.service == "payments" && f.evidence.details["caller"] == "checkout" && f.evidence.count == 1)
        #expect(f.fix.contains("checkout"))
    }

    @Test func partialPropagationListsWhatWasLost() throws {
        var c = Crafted()
        let gs = c.span("gateway", .server, parent: nil, start: 0, end: 100)
        let gc = c.span("gateway", .client, parent: gs, start: 0, end: 100, attrs: ["peer.service": .string("frontend")])
        let fs = c.span("frontend", .server, parent: gc, start: 1, end: 99,
                        attrs: ["meshtrace.propagation.injected": .string("w3c,b3multi"), "guid:x-request-id": .string("in-1")], traceState: "vendor=1")
        // The app forwarded traceparent only: no B3, no tracestate, no x-request-id.
        let fc = c.span("frontend", .client, parent: fs, start: 2, end: 98,
                        attrs: ["meshtrace.propagation.extracted": .string("w3c"), "guid:x-request-id": .string("new-2"), "peer.service": .string("backend")])
        _ = c.span("backend", .server, parent: fc, start: 3, end: 97)
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(kinds(findings) == [.partialPropagation], "\(findings)")
        let f = try #require(findings.first)
        #expect(f.service == "frontend" && f.evidence.count == 1 && f.evidence.outOf == 1)
        #expect(f.evidence.details["lost"] == "b3multi=1,tracestate=1,x-request-id=1")
        #expect(f.evidence.details["forwarded"] == "w3c")
        #expect(f.fix.contains("x-b3-traceid") && f.fix.contains("tracestate") && f.fix.contains("x-request-id"))
        #expect(!f.fix.contains("traceparent"))
    }

    @Test func onlyB3ForwardedIsPartialToo() throws {
        var c = Crafted()
        let fs = c.span("frontend", .server, parent: nil, start: 1, end: 99, attrs: ["meshtrace.propagation.injected": .string("w3c,b3multi")])
        let fc = c.span("frontend", .client, parent: fs, start: 2, end: 98, attrs: ["meshtrace.propagation.extracted": .string("b3multi"), "peer.service": .string("backend")])
        _ = c.span("backend", .server, parent: fc, start: 3, end: 97)
        let f = try #require(TraceAnalyzer.analyze(spans: c.spans).first { $0.kind == .partialPropagation })
        #expect(f.evidence.details["lost"] == "w3c=1")
        #expect(f.fix.contains("traceparent"))
    }

    @Test func clockSkewIsAChildOutsideItsParent() throws {
        var c = Crafted()
        let gs = c.span("gateway", .server, parent: nil, start: 100, end: 200)
        let gc = c.span("gateway", .client, parent: gs, start: 100, end: 200, attrs: ["peer.service": .string("frontend")])
        // frontend's host clock runs 40 ms behind.
        _ = c.span("frontend", .server, parent: gc, start: 60, end: 150)
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(kinds(findings) == [.clockSkew], "\(findings)")
        let f = try #require(findings.first)
        #expect(f.service == "frontend" && f.evidence.details["parentService"] == "gateway" && f.evidence.details["maxSkewMs"] == "40")
    }

    @Test func samplingFlipWhenAHopSamplesWhatItsCallerDidNot() throws {
        var c = Crafted()
        _ = c.span("backend", .server, parent: SpanID(0xBEEF), start: 0, end: 10, attrs: ["meshtrace.sampling.upstream": .bool(false)])
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(kinds(findings) == [.samplingFlip], "\(findings)")  // not also an orphan
        #expect(findings.first?.service == "backend")
    }

    @Test func samplingFlipWhenThePeerResamplesASampledCall() throws {
        var c = Crafted()
        let fs = c.span("frontend", .server, parent: nil, start: 0, end: 10)
        _ = c.span("frontend", .client, parent: fs, start: 1, end: 9, attrs: ["peer.service": .string("backend")])
        // backend reports other requests, at 10%: it dropped this sampled one.
        c.trace = TraceID(high: 0xAAAA, low: 7)
        let other = c.span("frontend", .server, parent: nil, start: 20, end: 30)
        let oc = c.span("frontend", .client, parent: other, start: 21, end: 29, attrs: ["peer.service": .string("backend")])
        _ = c.span("backend", .server, parent: oc, start: 22, end: 28, attrs: ["sampling.rate": .double(0.1)])
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(kinds(findings) == [.samplingFlip], "\(findings)")
        #expect(findings.first?.service == "backend" && findings.first?.evidence.details["caller"] == "frontend")
    }

    @Test func uninstrumentedHopClientWithoutServer() throws {
        var c = Crafted()
        let fs = c.span("frontend", .server, parent: nil, start: 0, end: 10)
        _ = c.span("frontend", .client, parent: fs, start: 1, end: 9, attrs: ["peer.service": .string("legacy")])
        // A call the proxy answered itself (connect failure) expects no SERVER span.
        _ = c.span("frontend", .client, parent: fs, start: 1, end: 2, attrs: ["peer.service": .string("gone"), "response_flags": .string("UF")])
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(kinds(findings) == [.uninstrumentedHop], "\(findings)")
        let f = try #require(findings.first)
        #expect(f.service == "legacy" && f.evidence.details["caller"] == "frontend")
    }

    @Test func uninstrumentedHopServerWithoutCaller() throws {
        var c = Crafted()
        // backend's app called database straight (around its sidecar), forwarding headers.
        let bs = c.span("backend", .server, parent: nil, start: 0, end: 10)
        _ = c.span("database", .server, parent: bs, start: 1, end: 9)
        // And some request reached database with no context at all, though database is normally called in the mesh.
        c.trace = TraceID(high: 0xAAAA, low: 3)
        _ = c.span("database", .server, parent: nil, start: 20, end: 30)
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(findings.count == 2 && findings.allSatisfy { $0.kind == .uninstrumentedHop }, "\(findings)")
        #expect(findings.contains { $0.service == "backend" && $0.evidence.details["peer"] == "database" && $0.fix.contains("DATABASE_URL") })
        #expect(findings.contains { $0.service == "database" && $0.evidence.count == 1 && $0.evidence.outOf == 2 })
    }

    @Test func inferredLinksAreNotPartialPropagation() {
        var c = Crafted()
        c.healthy()
        for i in c.spans.indices where c.spans[i].serviceName == "backend" && c.spans[i].kind == .client {
            c.spans[i].attributes.append(Attribute("meshtrace.parent_inferred", .bool(true)))
            c.spans[i].attributes.removeAll { $0.key == "meshtrace.propagation.extracted" }
            c.spans[i].attributes.append(Attribute("meshtrace.propagation.extracted", .string("none")))
        }
        #expect(TraceAnalyzer.analyze(spans: c.spans).isEmpty)
    }

    @Test func serviceFilterAndReportText() {
        var c = Crafted()
        let missing = SpanID(0xDEAD)
        _ = c.span("payments", .server, parent: missing, start: 0, end: 10)
        _ = c.span("shipping", .server, parent: missing, start: 0, end: 10)
        let only = TraceAnalyzer.analyze(spans: c.spans, options: AnalysisOptions(service: "shipping"))
        #expect(only.map(\.service) == ["shipping"])
        let report = AnalysisReport(windowStartMs: 0, windowEndMs: 900_000, traces: 1, spans: 2, services: ["payments", "shipping"], truncated: false, findings: only)
        let text = report.text(queryURL: "http://q")
        #expect(text.contains("1 problem found") && text.contains("orphan spans — shipping") && text.contains("fix: "))
        let clean = AnalysisReport(windowStartMs: 0, windowEndMs: 900_000, traces: 3, spans: 9, services: [], truncated: false, findings: [])
        #expect(clean.text().contains("no problems found"))
    }
}

struct CriticalPathTests {
    @Test func followsTheLastFinishingChildAndClipsOverflow() {
        var c = Crafted()
        let root = c.span("gateway", .server, parent: nil, start: 0, end: 100)
        let a = c.span("a", .client, parent: root, start: 10, end: 25)
        let b = c.span("b", .client, parent: root, start: 30, end: 80)
        // Overflows its parent b by 20 ms (clipped to 80) and starts inside it.
        let bChild = c.span("b", .server, parent: b, start: 50, end: 100)
        // Starts after its parent a ended: dropped.
        _ = c.span("a", .server, parent: a, start: 26, end: 60)
        let path = CriticalPath.compute(trace: c.spans)
        let ms = Crafted.ms, t0 = Crafted.t0
        let expected: [(SpanID, UInt64, UInt64)] = [
            (root, 0, 10), (a, 10, 25), (root, 25, 30), (b, 30, 50), (bChild, 50, 80), (root, 80, 100),
        ]
        #expect(path.map(\.spanID) == expected.map { $0.0.hex }, "\(path)")
        #expect(path.map(\.startNanos) == expected.map { t0 + $0.1 * ms })
        #expect(path.map(\.endNanos) == expected.map { t0 + $0.2 * ms })
        // The path covers the root's whole duration, without overlap.
        #expect(path.reduce(0) { $0 + $1.durationNanos } == 100 * ms)
    }

    @Test func aLeafTraceIsItsOwnPathAndEmptyIsEmpty() {
        var c = Crafted()
        let only = c.span("x", .server, parent: nil, start: 0, end: 5)
        #expect(CriticalPath.compute(trace: c.spans).map(\.spanID) == [only.hex])
        #expect(CriticalPath.compute(trace: []).isEmpty)
    }
}
