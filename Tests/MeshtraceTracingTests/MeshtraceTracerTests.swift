import Instrumentation
import MeshtraceTesting
import MeshtraceTracing
import Synchronization
import Testing
import TraceExport
import TraceModel
import Tracing

/// A case-insensitive header dictionary, as HTTP header containers behave.
struct Headers: Sendable {
    var fields: [String: String] = [:]
    subscript(name: String) -> String? { fields[name.lowercased()] }
}

struct HeadersExtractor: Extractor {
    func extract(key: String, from carrier: Headers) -> String? { carrier[key] }
}

struct HeadersInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout Headers) {
        carrier.fields[key.lowercased()] = value
    }
}

struct Boom: Error, CustomStringConvertible {
    var description: String { "boom happened" }
}

func makeTracer(sampling: Double = 100, formats: [PropagationFormat] = [.w3c, .b3multi]) -> (MeshtraceTracer, InMemorySpanExporter) {
    let exporter = InMemorySpanExporter()
    let tracer = MeshtraceTracer(serviceName: "unit", exporter: exporter, formats: formats, sampler: Sampler(percent: sampling))
    return (tracer, exporter)
}

func extracted(_ tracer: MeshtraceTracer, _ fields: [String: String]) -> InstrumentationContext {
    var context = InstrumentationContext.topLevel
    tracer.extract(Headers(fields: fields), into: &context, using: HeadersExtractor())
    return context
}

@Suite struct MeshtraceTracerTests {
    @Test func rootAndChildSpansLinkAndExportOnFlush() async throws {
        let (tracer, exporter) = makeTracer()
        tracer.withSpan("parent", context: .topLevel) { parent in
            tracer.withSpan("child", context: parent.context, ofKind: .client) { _ in }
        }
        #expect(exporter.exported.isEmpty, "nothing leaves before flush or the export loop")
        #expect(tracer.queuedSpans == 2)
        await tracer.flush()
        let spans = exporter.exported
        #expect(spans.count == 2)
        let parent = try #require(spans.first { $0.name == "parent" })
        let child = try #require(spans.first { $0.name == "child" })
        #expect(parent.parentSpanID == nil)
        #expect(child.parentSpanID == parent.spanID)
        #expect(child.traceID == parent.traceID)
        #expect(child.kind == .client)
        #expect(parent.kind == .internal)
        #expect(parent.serviceName == "unit")
        #expect(child.startTimeNanos >= parent.startTimeNanos && child.endTimeNanos <= parent.endTimeNanos)
        #expect(tracer.queuedSpans == 0)
    }

    @Test func taskLocalContextParentsNestedWithSpan() async throws {
        let (tracer, exporter) = makeTracer()
        await tracer.withSpan("outer", context: .topLevel) { _ in
            // withSpan binds the span's context to InstrumentationContext.current.
            tracer.withSpan("inner") { _ in }
        }
        await tracer.flush()
        let outer = try #require(exporter.exported.first { $0.name == "outer" })
        let inner = try #require(exporter.exported.first { $0.name == "inner" })
        #expect(inner.parentSpanID == outer.spanID)
    }

    @Test func newRootsGetFreshTraceIDs() async {
        let (tracer, exporter) = makeTracer()
        tracer.withSpan("a", context: .topLevel) { _ in }
        tracer.withSpan("b", context: .topLevel) { _ in }
        await tracer.flush()
        #expect(Set(exporter.exported.map(\.traceID)).count == 2)
    }

    @Test func extractsW3C() async throws {
        let (tracer, exporter) = makeTracer()
        let context = extracted(tracer, [
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "vendor=1",
        ])
        let remote = try #require(context.meshtraceTraceContext)
        #expect(remote.traceID.hex32 == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(remote.sampled == true)
        tracer.withSpan("server", context: context, ofKind: .server) { _ in }
        await tracer.flush()
        let span = try #require(exporter.exported.first)
        #expect(span.traceID == remote.traceID)
        #expect(span.parentSpanID?.hex == "00f067aa0ba902b7")
        #expect(span.traceState == "vendor=1")
        #expect(span.kind == .server)
    }

    @Test func extractsB3MultiAndSingle() throws {
        let (tracer, _) = makeTracer()
        let multi = try #require(extracted(tracer, [
            "x-b3-traceid": "80f198ee56343ba864fe8b2a57d3eff7", "x-b3-spanid": "e457b5a2e4d86bd1",
            "x-b3-parentspanid": "05e3ac9a4f6e3b90", "x-b3-sampled": "1",
        ]).meshtraceTraceContext)
        #expect(multi.traceID.hex == "80f198ee56343ba864fe8b2a57d3eff7")
        #expect(multi.spanID.hex == "e457b5a2e4d86bd1")
        #expect(multi.sampled == true)

        let single = try #require(extracted(tracer, ["b3": "80f198ee56343ba8-e457b5a2e4d86bd1-0"]).meshtraceTraceContext)
        #expect(single.traceID.hex == "80f198ee56343ba8")
        #expect(single.sampled == false)
    }

    @Test func invalidOrMissingHeadersLeaveNoContext() {
        let (tracer, _) = makeTracer()
        #expect(extracted(tracer, [:]).meshtraceTraceContext == nil)
        #expect(extracted(tracer, ["traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"]).meshtraceTraceContext == nil)
        #expect(extracted(tracer, ["x-b3-traceid": "xyz", "x-b3-spanid": "e457b5a2e4d86bd1"]).meshtraceTraceContext == nil)
    }

    @Test func injectRoundTripsThroughEveryFormat() throws {
        for formats: [PropagationFormat] in [[.w3c], [.b3multi], [.b3single], [.w3c, .b3multi]] {
            let (tracer, _) = makeTracer(formats: formats)
            let span = tracer.startSpan("client", context: .topLevel, ofKind: .client)
            var headers = Headers()
            tracer.inject(span.context, into: &headers, using: HeadersInjector())
            span.end()
            #expect((headers["traceparent"] != nil) == formats.contains(.w3c))
            #expect((headers["x-b3-traceid"] != nil) == formats.contains(.b3multi))
            #expect((headers["b3"] != nil) == formats.contains(.b3single))
            let back = try #require(extracted(tracer, headers.fields).meshtraceTraceContext, "formats \(formats)")
            #expect(back.traceID == span.traceContext.traceID)
            #expect(back.spanID == span.traceContext.spanID)
            #expect(back.sampled == true)
        }
    }

    @Test func injectWritesB3ParentAndNothingWithoutContext() throws {
        let (tracer, _) = makeTracer(formats: [.b3multi])
        let remote = extracted(tracer, ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"])
        let span = tracer.startSpan("child", context: remote)
        var headers = Headers()
        tracer.inject(span.context, into: &headers, using: HeadersInjector())
        #expect(headers["x-b3-traceid"] == "4bf92f3577b34da6a3ce929d0e0e4736")
        #expect(headers["x-b3-spanid"] == span.traceContext.spanID.hex)
        #expect(headers["x-b3-parentspanid"] == "00f067aa0ba902b7")
        #expect(headers["x-b3-sampled"] == "1")
        span.end()

        var empty = Headers()
        tracer.inject(.topLevel, into: &empty, using: HeadersInjector())
        #expect(empty.fields.isEmpty)
    }

    @Test func samplingHonoursTheParentDecision() async throws {
        // A 0% tracer still records a trace that was sampled upstream…
        let (never, neverExporter) = makeTracer(sampling: 0)
        never.withSpan("kept", context: extracted(never, ["b3": "80f198ee56343ba8-e457b5a2e4d86bd1-1"])) { _ in }
        never.withSpan("new-root", context: .topLevel) { span in #expect(!span.isRecording) }
        await never.flush()
        #expect(neverExporter.exported.map(\.name) == ["kept"])

        // …and a 100% tracer drops one the upstream declined, including its children, while
        // still propagating the "not sampled" decision.
        let (always, alwaysExporter) = makeTracer(sampling: 100)
        let declined = extracted(always, ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"])
        always.withSpan("dropped", context: declined) { span in
            #expect(!span.isRecording)
            span.attributes["ignored"] = "x"
            always.withSpan("dropped-child", context: span.context) { _ in }
            var headers = Headers()
            always.inject(span.context, into: &headers, using: HeadersInjector())
            #expect(headers["traceparent"]?.hasSuffix("-00") == true)
            #expect(headers["x-b3-sampled"] == "0")
        }
        // A bare decision (no ids) is honoured by the new root.
        always.withSpan("bare-no", context: extracted(always, ["b3": "0"])) { span in #expect(!span.isRecording) }
        never.withSpan("bare-debug", context: extracted(never, ["x-b3-flags": "1"])) { span in #expect(span.isRecording) }
        await always.flush()
        #expect(alwaysExporter.exported.isEmpty)
    }

    @Test func samplingIsConsistentPerTraceID() {
        let (tracer, _) = makeTracer(sampling: 50)
        var decisions: [Bool] = []
        for _ in 0..<200 {
            let span = tracer.startSpan("root", context: .topLevel)
            decisions.append(span.isRecording)
            #expect(span.isRecording == Sampler(percent: 50).isSampled(span.traceContext.traceID))
            span.end()
        }
        #expect(decisions.contains(true) && decisions.contains(false))
    }

    @Test func attributesEventsLinksAndStatusMap() async throws {
        let (tracer, exporter) = makeTracer()
        let other = tracer.startSpan("other", context: .topLevel)
        other.end()
        let span = tracer.startSpan("work", context: .topLevel)
        span.attributes["s"] = "text"
        span.attributes["i"] = 42
        span.attributes["i32"] = SpanAttribute.int32(7)
        span.attributes["d"] = 1.5
        span.attributes["b"] = true
        span.attributes["sa"] = SpanAttribute.stringArray(["a", "b"])
        span.attributes["ia"] = SpanAttribute.int64Array([1, 2])
        span.attributes["conv"] = SpanAttribute.stringConvertible(Boom())
        span.addEvent(SpanEvent(name: "cache-miss", attributes: ["key": "r7"]))
        span.addLink(other)
        span.operationName = "work-renamed"
        span.setStatus(SpanStatus(code: .ok))
        span.setStatus(SpanStatus(code: .error, message: "ignored after ok"))
        span.end()
        span.end()  // a second end is ignored, not a second span
        await tracer.flush()
        #expect(exporter.exported.count == 2)
        let out = try #require(exporter.exported.first { $0.name == "work-renamed" })
        #expect(out.attribute("s") == .string("text"))
        #expect(out.attribute("i") == .int(42))
        #expect(out.attribute("i32") == .int(7))
        #expect(out.attribute("d") == .double(1.5))
        #expect(out.attribute("b") == .bool(true))
        #expect(out.attribute("sa") == .array([.string("a"), .string("b")]))
        #expect(out.attribute("ia") == .array([.int(1), .int(2)]))
        #expect(out.attribute("conv") == .string("boom happened"))
        #expect(out.attributes.map(\.key) == out.attributes.map(\.key).sorted())
        #expect(out.events.map(\.name) == ["cache-miss"])
        #expect(out.events.first?.attributes == [Attribute("key", .string("r7"))])
        #expect(out.links.map(\.spanID) == [other.traceContext.spanID])
        #expect(out.status == .ok)
        #expect(out.scope?.name == "meshtrace-tracing")
        #expect(out.resource.contains(Attribute("telemetry.sdk.language", .string("swift"))))
    }

    @Test func thrownErrorsBecomeExceptionEventAndErrorStatus() async throws {
        let (tracer, exporter) = makeTracer()
        #expect(throws: Boom.self) {
            try tracer.withSpan("failing", context: .topLevel) { _ in throw Boom() }
        }
        await tracer.flush()
        let span = try #require(exporter.exported.first)
        #expect(span.status.code == .error)
        #expect(span.isError)
        let event = try #require(span.events.first { $0.name == "exception" })
        #expect(event.attributes.contains(Attribute("exception.message", .string("boom happened"))))
        #expect(event.attributes.contains { $0.key == "exception.type" })
    }

    @Test func exportLoopSendsWithoutExplicitFlushAndShutdownDrains() async throws {
        let exporter = InMemorySpanExporter()
        let tracer = MeshtraceTracer(serviceName: "loop", exporter: exporter, flushInterval: .milliseconds(20))
        tracer.startExporting()
        tracer.withSpan("background", context: .topLevel) { _ in }
        let deadline = ContinuousClock.now + .seconds(60)  // a guard against a hang; two loaded cores have stalled a task 10 s
        // Sleeping, not yielding, between polls: the export loop needs a cooperative thread.
        while exporter.exported.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
        #expect(exporter.exported.map(\.name) == ["background"])
        await tracer.shutdown()
        tracer.withSpan("late", context: .topLevel) { _ in }
        await tracer.flush()
        #expect(exporter.exported.map(\.name) == ["background", "late"])
    }

    @Test func collectorURLResolution() throws {
        #expect(try MeshtraceTracing.exportTarget(collector: nil, environment: [:]) == .disabled)
        #expect(try MeshtraceTracing.exportTarget(collector: "none", environment: [:]) == .disabled)
        #expect(try MeshtraceTracing.exportTarget(collector: nil, environment: ["MESHTRACE_COLLECTOR": "http://c:9411"])
            == SpanExportTarget(kind: .zipkin, url: "http://c:9411/api/v2/spans"))
        #expect(try MeshtraceTracing.exportTarget(collector: "http://c:4318/", environment: [:])
            == SpanExportTarget(kind: .otlp, url: "http://c:4318/v1/traces"))
        #expect(try MeshtraceTracing.exportTarget(collector: "http://c:1234/v1/traces", environment: [:]).kind == .otlp)
        #expect(try MeshtraceTracing.exportTarget(collector: "http://c:1234/api/v2/spans", environment: ["MESHTRACE_COLLECTOR": "http://x:1"]).url
            == "http://c:1234/api/v2/spans")
        #expect(throws: MeshtraceTracing.ConfigurationError.self) { try MeshtraceTracing.exportTarget(collector: "https://c:9411", environment: [:]) }
        #expect(throws: MeshtraceTracing.ConfigurationError.self) { try MeshtraceTracing.exportTarget(collector: "http://c:9411/other", environment: [:]) }
    }
}
