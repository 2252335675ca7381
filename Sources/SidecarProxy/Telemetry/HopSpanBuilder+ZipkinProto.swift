import TraceModel
import TraceWire

extension HopSpanBuilder {
    /// `span(for:)` as a Zipkin proto3 `Span` message (without the `ListOfSpans` framing),
    /// written straight from the hop as `writeZipkin` writes JSON. A test holds the two to
    /// decode into the same span.
    public func writeZipkinProto(_ hop: HopRecord, samplingPercent: Double, to w: ProtoWriter) {
        ZipkinProto.writeIDs(traceID: hop.context.traceID, parentSpanID: hop.context.parentSpanID, spanID: hop.context.spanID, to: w)
        w.uint64(field: 4, hop.direction == .inbound ? 2 : 1)  // SERVER : CLIENT
        let name = w.beginMessage(field: 5)
        w.append(hop.method)
        w.append(" ")
        configuration.naming.withRoute(hop.path, method: hop.method) { w.append($0) }
        w.endMessage(name)
        if hop.startNanos >= 1_000 { w.fixed64(field: 6, hop.startNanos / 1_000) }
        let duration = max(hop.durationNanos, 1_000)
        w.uint64(field: 7, duration / 1_000 + (duration % 1_000 == 0 ? 0 : 1))
        if !configuration.serviceName.isEmpty {
            let local = w.beginMessage(field: 8)
            w.string(field: 1, configuration.serviceName)
            w.endMessage(local)
        }
        let (serviceName, address) = Self.remote(of: hop)
        let parts = address.map(Self.split)
        ZipkinProto.writeEndpoint(field: 9, serviceName: serviceName, host: parts?.host, port: parts?.port, to: w)
        if let event = failureEvent(of: hop) {
            ZipkinProto.writeAnnotation(timeNanos: event.timeNanos, value: ZipkinJSON.annotationValue(event), to: w)
        }
        var sink = w  // the sink protocol is written for value-type writers
        forEachTag(of: hop, samplingPercent: samplingPercent, into: &sink)
        if hop.context.debug { w.bool(field: 12, true) }
    }
}

/// Tags as `tags` map entries (field 11: key 1, value 2), each value the text Zipkin JSON
/// would carry.
extension ProtoWriter: HopTagSink {
    @inline(__always) private func entry(_ key: StaticString, _ value: (ProtoWriter) -> Void) {
        let (entry, text) = beginKeyedEntry(field: 11, key: key)
        value(self)
        endMessage(text)
        endMessage(entry)
    }

    func tag(_ key: StaticString, _ value: String) {
        entry(key) { $0.append(value) }
    }

    func tag(_ key: StaticString, int value: Int) {
        entry(key) { $0.appendDecimal(Int64(value)) }
    }

    func tag(_ key: StaticString, decimal value: Int) {
        entry(key) { $0.appendDecimal(Int64(value)) }
    }

    func tag(_ key: StaticString, double value: Double) {
        entry(key) { w in
            if value.isFinite, value == value.rounded(), abs(value) < 1e15 {
                w.appendDecimal(Int64(value))  // how `description` prints whole numbers
            } else {
                w.append(AttributeValue.double(value).description)
            }
        }
    }

    func tag(_ key: StaticString, bool value: Bool) {
        entry(key) { $0.append(value ? "true" : "false") }
    }

    func tag(_ key: StaticString, httpURL authority: String, _ path: Substring) {
        entry(key) { w in
            w.append("http://")
            w.append(authority)
            w.append(path)
        }
    }

    func customTag(_ key: String, _ value: String) {
        ZipkinProto.writeTag(key, value, to: self)
    }
}
