import Testing
import TraceModel

@testable import TraceWire

@Suite struct ZipkinAnnotationEventTests {
    @Test func otelStyleAnnotationsBecomeEventsWithAttributes() throws {
        let body = Array("""
            [{"traceId":"0000000000000001","id":"0000000000000002","name":"x","timestamp":1,"duration":2,
              "localEndpoint":{"serviceName":"s"},
              "annotations":[{"timestamp":1,"value":"{\\"cache miss\\": {\\"key\\": \\"sku-1\\", \\"n\\": 3, \\"hit\\": false}}"},
                             {"timestamp":2,"value":"plain"},{"timestamp":3,"value":"{not json}"}]}]
            """.utf8)
        let span = try #require(try ZipkinJSON.decode(body).spans.first)
        #expect(span.events.map(\.name) == ["cache miss", "plain", "{not json}"])
        #expect(span.events[0].attributes == [Attribute("key", .string("sku-1")), Attribute("n", .int(3)), Attribute("hit", .bool(false))])
        // and the encoder writes them back the same way
        let again = try #require(try ZipkinJSON.decode(ZipkinJSON.encode([span])).spans.first)
        #expect(again.events == span.events)
    }
}
