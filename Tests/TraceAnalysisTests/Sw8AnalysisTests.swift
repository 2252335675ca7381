import Testing
import TraceModel

@testable import TraceAnalysis

/// The doctor with `sw8` among the sidecar's formats, and with a SkyWalking agent in the app.
struct Sw8AnalysisTests {
    /// gateway → frontend (its sidecar injects w3c,b3multi,sw8; the app forwards what `kept` says) → backend.
    func path(forwarded kept: String, _ c: inout Crafted) {
        let all: AttributeValue = .string("w3c,b3multi,sw8")
        let gc = c.span("gateway", .client, parent: nil, start: 0, end: 100, attrs: ["peer.service": .string("frontend")])
        let fs = c.span("frontend", .server, parent: gc, start: 1, end: 99, attrs: ["meshtrace.propagation.injected": all, "meshtrace.propagation.extracted": all])
        let fc = c.span("frontend", .client, parent: fs, start: 2, end: 98, attrs: ["meshtrace.propagation.extracted": .string(kept), "peer.service": .string("backend")])
        _ = c.span("backend", .server, parent: fc, start: 3, end: 97, attrs: ["meshtrace.propagation.injected": all])
    }

    @Test func forwardingSw8OnlyIsPartialPropagationButOneTrace() throws {
        var c = Crafted()
        path(forwarded: "sw8", &c)
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(kinds(findings) == [.partialPropagation], "\(findings)")
        let f = try #require(findings.first)
        #expect(f.summary.contains("lost b3multi, w3c") && f.summary.contains("forwards sw8 only"))
        #expect(f.fix.contains("traceparent") && f.fix.contains("x-b3-traceid"))
        // Forwarding everything but sw8 names the SkyWalking headers to copy.
        var d = Crafted()
        path(forwarded: "w3c,b3multi", &d)
        #expect(TraceAnalyzer.analyze(spans: d.spans).first?.fix.contains("sw8, sw8-correlation and sw8-x") == true)
    }

    /// Sidecar SERVER → agent entry SERVER → agent exit CLIENT → sidecar CLIENT → next SERVER:
    /// nothing is missing.
    @Test func anAgentsSpansBetweenTheSidecarsAreHealthy() {
        var c = Crafted()
        let all: AttributeValue = .string("w3c,sw8")
        let gc = c.span("gateway", .client, parent: nil, start: 0, end: 100, attrs: ["peer.service": .string("app")])
        let inbound = c.span("app", .server, parent: gc, start: 1, end: 99, attrs: ["meshtrace.propagation.injected": all, "meshtrace.propagation.extracted": all])
        let entry = c.span("app", .server, parent: inbound, start: 2, end: 98)
        let exit = c.span("app", .client, parent: entry, start: 3, end: 97, attrs: ["peer.address": .string("backend:80")])
        let outbound = c.span("app", .client, parent: exit, start: 4, end: 96, attrs: ["meshtrace.propagation.extracted": .string("sw8"), "peer.service": .string("backend")])
        _ = c.span("backend", .server, parent: outbound, start: 5, end: 95, attrs: ["meshtrace.propagation.injected": all])
        let findings = TraceAnalyzer.analyze(spans: c.spans)
        #expect(findings.isEmpty, "\(findings)")
    }

    @Test func disagreeingHeadersAreReported() throws {
        var c = Crafted()
        let gc = c.span("gateway", .client, parent: nil, start: 0, end: 100, attrs: ["peer.service": .string("app")])
        _ = c.span("app", .client, parent: gc, start: 1, end: 99, attrs: [
            "meshtrace.propagation.extracted": .string("w3c,sw8"), "meshtrace.propagation.disagreed": .string("sw8"),
            "peer.service": .string("backend"), "response_flags": .string("UF"),
        ])
        let findings = TraceAnalyzer.analyze(spans: c.spans).filter { $0.kind == .conflictingContext }
        let f = try #require(findings.first)
        #expect(f.service == "app" && f.evidence.count == 1 && f.evidence.details["disagreed"] == "sw8" && f.evidence.details["used"] == "w3c")
        #expect(f.summary.contains("sw8 named another trace or parent than w3c"))
        #expect(f.fix.contains("do not copy traceparent"))
    }
}
