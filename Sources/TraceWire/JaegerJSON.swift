import TraceModel

/// The Jaeger UI / classic query API JSON model (`/api/traces`, `/api/traces/{id}`).
public enum JaegerJSON {
    /// One trace object: `{"traceID":..,"spans":[..],"processes":{..},"warnings":null}`.
    public static func trace(_ spans: [Span]) -> [UInt8] {
        var w = JSONWriter(capacity: spans.count * 700 + 64)
        write(trace: spans, to: &w)
        return w.bytes
    }

    /// `{"data":[trace,...],"total":N,"limit":L,"offset":O,"errors":null|[{"code":..,"msg":..,"traceID":..}]}`
    public static func encodeEnvelope(
        traces: [[Span]], errors: [(code: Int?, msg: String, traceID: String?)] = [], limit: Int = 0, offset: Int = 0
    ) -> [UInt8] {
        var w = JSONWriter(capacity: traces.reduce(64) { $0 + $1.count * 700 + 64 })
        w.beginObject()
        w.key("data")
        w.beginArray()
        for t in traces { write(trace: t, to: &w) }
        w.endArray()
        w.member("total", traces.count)
        w.member("limit", limit)
        w.member("offset", offset)
        w.key("errors")
        if errors.isEmpty {
            w.appendNull()
        } else {
            w.beginArray()
            for e in errors {
                w.beginObject()
                if let code = e.code { w.member("code", code) }
                w.member("msg", e.msg)
                if let id = e.traceID { w.member("traceID", id) }
                w.endObject()
            }
            w.endArray()
        }
        w.endObject()
        return w.bytes
    }

    struct ProcessKey: Hashable {
        var serviceName: String
        var tags: [Attribute]
    }

    /// Writes one trace object into an existing writer (for callers building their own envelopes).
    public static func write(trace spans: [Span], to w: inout JSONWriter) {
        // Processes p1, p2, ... in order of first appearance, one per (service, resource).
        var processIDs = [ProcessKey: String]()
        var processes = [(id: String, key: ProcessKey)]()
        var spanProcess = [String]()
        spanProcess.reserveCapacity(spans.count)
        for s in spans {
            let key = ProcessKey(serviceName: s.serviceName, tags: s.resource)
            if let id = processIDs[key] {
                spanProcess.append(id)
            } else {
                let id = "p\(processes.count + 1)"
                processIDs[key] = id
                processes.append((id, key))
                spanProcess.append(id)
            }
        }

        w.beginObject()
        w.member("traceID", spans.first?.traceID.hex ?? "")
        w.key("spans")
        w.beginArray()
        for (i, s) in spans.enumerated() { writeSpan(s, processID: spanProcess[i], to: &w) }
        w.endArray()
        w.key("processes")
        w.beginObject()
        for p in processes {
            w.key(p.id)
            w.beginObject()
            w.member("serviceName", p.key.serviceName)
            w.key("tags")
            w.beginArray()
            for a in p.key.tags { writeTag(a.key, a.value, to: &w) }
            w.endArray()
            w.endObject()
        }
        w.endObject()
        w.key("warnings")
        w.appendNull()
        w.endObject()
    }

    static func writeSpan(_ s: Span, processID: String, to w: inout JSONWriter) {
        let traceHex = s.traceID.hex
        w.beginObject()
        w.member("traceID", traceHex)
        w.member("spanID", s.spanID.hex)
        w.member("flags", 1)
        w.member("operationName", s.name)
        w.key("references")
        w.beginArray()
        if let p = s.parentSpanID {
            w.beginObject()
            w.member("refType", "CHILD_OF")
            w.member("traceID", traceHex)
            w.member("spanID", p.hex)
            w.endObject()
        }
        for l in s.links {
            w.beginObject()
            w.member("refType", "FOLLOWS_FROM")
            w.member("traceID", l.traceID.hex)
            w.member("spanID", l.spanID.hex)
            w.endObject()
        }
        w.endArray()
        w.member("startTime", Micros.floor(s.startTimeNanos))
        w.member("duration", Micros.ceil(s.durationNanos))

        w.key("tags")
        w.beginArray()
        let isError = s.status.code == .error
        for a in s.attributes {
            // The status is shown as a bool `error` tag below; a Zipkin `error` string tag would hide it.
            if isError && a.key == "error" { continue }
            writeTag(a.key, a.value, to: &w)
        }
        if s.kind != .unspecified && s.kind != .internal && s.attribute("span.kind") == nil {
            writeTag("span.kind", .string(s.kind.jaegerName), to: &w)
        }
        if let scope = s.scope {
            if !scope.name.isEmpty { writeTag("otel.scope.name", .string(scope.name), to: &w) }
            if let v = scope.version { writeTag("otel.scope.version", .string(v), to: &w) }
        }
        switch s.status.code {
        case .error:
            if s.attribute("otel.status_code") == nil { writeTag("otel.status_code", .string("ERROR"), to: &w) }
            writeTag("error", .bool(true), to: &w)
        case .ok:
            if s.attribute("otel.status_code") == nil { writeTag("otel.status_code", .string("OK"), to: &w) }
        case .unset:
            break
        }
        if let m = s.status.message, !m.isEmpty, s.attribute("otel.status_description") == nil {
            writeTag("otel.status_description", .string(m), to: &w)
        }
        if let r = s.remoteEndpoint {
            if let name = r.serviceName, s.attribute("peer.service") == nil { writeTag("peer.service", .string(name), to: &w) }
            if let ip = r.ipv4 { writeTag("peer.ipv4", .string(ip), to: &w) }
            if let ip = r.ipv6 { writeTag("peer.ipv6", .string(ip), to: &w) }
            if let port = r.port { writeTag("peer.port", .int(Int64(port)), to: &w) }
        }
        if let ts = s.traceState, !ts.isEmpty { writeTag("w3c.tracestate", .string(ts), to: &w) }
        w.endArray()

        w.key("logs")
        w.beginArray()
        for e in s.events {
            w.beginObject()
            w.member("timestamp", Micros.floor(e.timeNanos))
            w.key("fields")
            w.beginArray()
            writeTag("event", .string(e.name), to: &w)
            for a in e.attributes { writeTag(a.key, a.value, to: &w) }
            w.endArray()
            w.endObject()
        }
        w.endArray()
        w.member("processID", processID)
        w.key("warnings")
        w.appendNull()
        w.endObject()
    }

    /// 2^53 - 1: larger integers lose precision in JavaScript, so Jaeger sends them as strings.
    static let maxSafeInteger: Int64 = 9_007_199_254_740_991

    /// A typed key/value: string, bool, int64, float64 or binary (base64). Arrays are JSON text.
    public static func writeTag(_ key: String, _ value: AttributeValue, to w: inout JSONWriter) {
        w.beginObject()
        w.member("key", key)
        switch value {
        case .string(let s):
            w.member("type", "string")
            w.member("value", s)
        case .bool(let b):
            w.member("type", "bool")
            w.member("value", b)
        case .int(let i):
            w.member("type", "int64")
            if i > maxSafeInteger || i < -maxSafeInteger { w.member("value", String(i)) } else { w.member("value", i) }
        case .double(let d):
            if d.isFinite {
                w.member("type", "float64")
                w.member("value", d)
            } else {
                w.member("type", "string")  // JSON has no NaN/Infinity
                w.member("value", String(d))
            }
        case .bytes(let b):
            w.member("type", "binary")
            w.member("value", Base64.encode(b))
        case .array:
            w.member("type", "string")
            w.member("value", value.description)
        }
        w.endObject()
    }
}
