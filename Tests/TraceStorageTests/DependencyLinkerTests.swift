import Testing
import TraceModel

@testable import TraceStorage

/// Crafted traces for each DependencyLinker rule (Zipkin's DependencyLinkerTest cases, in spirit).
@Suite("DependencyLinker")
struct DependencyLinkerTests {
    let trace = tid(0xabc)

    func link(_ spans: [Span]) -> [DependencyLink] { DependencyLinker.link(trace: spans) }

    @Test func clientServerPairLinksOnceByServerSide() {
        let spans = [
            span(trace: trace, id: 1, kind: .server, service: "web", remote: "browser"),
            span(trace: trace, id: 2, parent: 1, kind: .client, service: "web", remote: "app"),
            span(trace: trace, id: 3, parent: 2, kind: .server, service: "app"),
        ]
        #expect(
            link(spans) == [
                DependencyLink(parent: "browser", child: "web", callCount: 1, errorCount: 0),
                DependencyLink(parent: "web", child: "app", callCount: 1, errorCount: 0),
            ])
    }

    @Test func sharedSpanIDClientServer() {
        // Zipkin B3 style: the server reuses the client's span id and is marked shared.
        let spans = [
            span(trace: trace, id: 1, kind: .client, service: "web", remote: "app"),
            span(trace: trace, id: 1, kind: .server, service: "app", shared: true),
        ]
        #expect(link(spans) == [DependencyLink(parent: "web", child: "app", callCount: 1, errorCount: 0)])
    }

    @Test func leafClientToUninstrumentedService() {
        let spans = [
            span(trace: trace, id: 1, kind: .server, service: "app"),
            span(trace: trace, id: 2, parent: 1, kind: .client, service: "app", remote: "mysql"),
            span(trace: trace, id: 3, parent: 1, kind: .client, service: "app", remote: "mysql"),
        ]
        #expect(link(spans) == [DependencyLink(parent: "app", child: "mysql", callCount: 2, errorCount: 0)])
    }

    @Test func rootServerWithUnknownCallerIsSkipped() {
        #expect(link([span(trace: trace, id: 1, kind: .server, service: "app")]).isEmpty)
        // With a known caller it links.
        #expect(
            link([span(trace: trace, id: 1, kind: .server, service: "app", remote: "lb")])
                == [DependencyLink(parent: "lb", child: "app", callCount: 1, errorCount: 0)])
    }

    @Test func errorsAreCounted() {
        let spans = [
            span(trace: trace, id: 1, kind: .server, service: "web"),
            // Client errored (Zipkin tag); its server child inherits the error.
            span(trace: trace, id: 2, parent: 1, kind: .client, service: "web", attributes: [Attribute("error", .string("503"))], remote: "app"),
            span(trace: trace, id: 3, parent: 2, kind: .server, service: "app"),
            // Leaf client with OTLP error status.
            span(trace: trace, id: 4, parent: 3, kind: .client, service: "app", status: .error(), remote: "db"),
            span(trace: trace, id: 5, parent: 3, kind: .client, service: "app", remote: "db"),
            // error=false is not an error.
            span(trace: trace, id: 6, parent: 3, kind: .client, service: "app", attributes: [Attribute("error", .bool(false))], remote: "db"),
        ]
        #expect(
            link(spans) == [
                DependencyLink(parent: "app", child: "db", callCount: 3, errorCount: 1),
                DependencyLink(parent: "web", child: "app", callCount: 1, errorCount: 1),
            ])
    }

    @Test func producerAndConsumerNeedBothSides() {
        let spans = [
            span(trace: trace, id: 1, kind: .server, service: "api", remote: "client"),
            span(trace: trace, id: 2, parent: 1, kind: .producer, service: "api", remote: "kafka"),
            span(trace: trace, id: 3, parent: 2, kind: .consumer, service: "worker", remote: "kafka"),
            // Broker unknown on either side: no link, and no ancestor walk.
            span(trace: trace, id: 4, parent: 1, kind: .producer, service: "api"),
            span(trace: trace, id: 5, parent: 4, kind: .consumer, service: "worker"),
        ]
        #expect(
            link(spans) == [
                DependencyLink(parent: "api", child: "kafka", callCount: 1, errorCount: 0),
                DependencyLink(parent: "client", child: "api", callCount: 1, errorCount: 0),
                DependencyLink(parent: "kafka", child: "worker", callCount: 1, errorCount: 0),
            ])
    }

    @Test func localSpansBetweenRemoteSpansAreWalkedOver() {
        let spans = [
            span(trace: trace, id: 1, kind: .server, service: "web", remote: "lb"),
            span(trace: trace, id: 2, parent: 1, kind: .internal, service: "web"),
            span(trace: trace, id: 3, parent: 2, kind: .internal, service: "web"),
            span(trace: trace, id: 4, parent: 3, kind: .server, service: "app"),  // server whose client was not reported
        ]
        #expect(
            link(spans) == [
                DependencyLink(parent: "lb", child: "web", callCount: 1, errorCount: 0),
                DependencyLink(parent: "web", child: "app", callCount: 1, errorCount: 0),
            ])
    }

    @Test func clientReportedUnderWrongServiceBackfillsLink() {
        // The client span claims service "app" but sits under web's server span: Zipkin backfills web -> app.
        let spans = [
            span(trace: trace, id: 1, kind: .server, service: "web"),
            span(trace: trace, id: 2, parent: 1, kind: .client, service: "app", remote: "db"),
        ]
        #expect(
            link(spans) == [
                DependencyLink(parent: "app", child: "db", callCount: 1, errorCount: 0),
                DependencyLink(parent: "web", child: "app", callCount: 1, errorCount: 0),
            ])
    }

    @Test func kindlessSpansNeedBothServiceNames() {
        #expect(
            link([span(trace: trace, id: 1, kind: .unspecified, service: "app", remote: "cache")])
                == [DependencyLink(parent: "app", child: "cache", callCount: 1, errorCount: 0)])
        #expect(link([span(trace: trace, id: 1, kind: .internal, service: "app")]).isEmpty)
    }

    @Test func orphansCyclesAndDuplicatesDoNotCrash() {
        let spans = [
            span(trace: trace, id: 1, parent: 2, kind: .client, service: "a", remote: "b"),
            span(trace: trace, id: 2, parent: 1, kind: .client, service: "b", remote: "c"),
            span(trace: trace, id: 3, parent: 77, kind: .client, service: "c", remote: "d"),
            span(trace: trace, id: 3, parent: 77, kind: .client, service: "c", remote: "d"),
        ]
        let links = link(spans)
        #expect(links.contains(DependencyLink(parent: "c", child: "d", callCount: 1, errorCount: 0)))
        #expect(link([]).isEmpty)
    }

    @Test func mergeSumsLinks() {
        let merged = DependencyLinker.merge([
            DependencyLink(parent: "a", child: "b", callCount: 2, errorCount: 1),
            DependencyLink(parent: "x", child: "y", callCount: 1, errorCount: 0),
            DependencyLink(parent: "a", child: "b", callCount: 3, errorCount: 0),
        ])
        #expect(
            merged == [
                DependencyLink(parent: "a", child: "b", callCount: 5, errorCount: 1),
                DependencyLink(parent: "x", child: "y", callCount: 1, errorCount: 0),
            ])
    }
}
