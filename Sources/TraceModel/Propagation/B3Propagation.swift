/// Zipkin B3 propagation: the multi-header form (`X-B3-TraceId`, `X-B3-SpanId`,
/// `X-B3-ParentSpanId`, `X-B3-Sampled`, `X-B3-Flags`) and the single `b3` header
/// (`{traceid}-{spanid}[-{sampled}[-{parentspanid}]]`, or just a decision `0`/`1`/`d`).
/// Anything malformed is ignored rather than half-used.
public enum B3Propagation {
    public static let traceIDHeader = "x-b3-traceid"
    public static let spanIDHeader = "x-b3-spanid"
    public static let parentSpanIDHeader = "x-b3-parentspanid"
    public static let sampledHeader = "x-b3-sampled"
    public static let flagsHeader = "x-b3-flags"
    public static let singleHeader = "b3"

    /// A sampling decision without ids (`b3: 0`, `X-B3-Sampled: 0` alone): the caller must
    /// start a new trace but respect the decision.
    public enum Extracted: Hashable, Sendable {
        case context(TraceContext)
        case decisionOnly(sampled: Bool, debug: Bool)
    }

    @inlinable
    public static func extractMulti(_ headers: some HeaderCarrier) -> Extracted? {
        extractMulti(
            sampled: headers.first(sampledHeader), flags: headers.first(flagsHeader), traceID: headers.first(traceIDHeader),
            spanID: headers.first(spanIDHeader), parentSpanID: { headers.first(parentSpanIDHeader) })
    }

    /// `extractMulti` on header values already looked up (the parent is read only when needed).
    public static func extractMulti(
        sampled rawSampled: String?, flags: String?, traceID: String?, spanID: String?, parentSpanID: () -> String?
    ) -> Extracted? {
        let sampled = rawSampled.flatMap(parseSampled)
        let debug = flags?.trimmingCharacters(in: " ") == "1"
        guard let rawTrace = traceID, let rawSpan = spanID else {
            if debug { return .decisionOnly(sampled: true, debug: true) }
            if let sampled { return .decisionOnly(sampled: sampled, debug: false) }
            return nil
        }
        guard let traceID = parseTraceID(rawTrace), let spanID = SpanID(hex: rawSpan.trimmingCharacters(in: " ").lowercased()) else {
            return nil
        }
        var parent: SpanID?
        if let rawParent = parentSpanID() {
            guard let parsed = SpanID(hex: rawParent.trimmingCharacters(in: " ").lowercased()) else { return nil }
            parent = parsed
        }
        return .context(TraceContext(traceID: traceID, spanID: spanID, parentSpanID: parent, sampled: debug ? true : sampled, debug: debug))
    }

    @inlinable
    public static func extractSingle(_ headers: some HeaderCarrier) -> Extracted? {
        guard let value = headers.first(singleHeader) else { return nil }
        return extractSingle(value)
    }

    /// `extractSingle` on the `b3` header's value.
    public static func extractSingle(_ value: String) -> Extracted? {
        let parts = value.trimmingCharacters(in: " ").split(separator: "-", omittingEmptySubsequences: false).map(String.init)
        if parts.count == 1 {
            switch parts[0] {
            case "0": return .decisionOnly(sampled: false, debug: false)
            case "1": return .decisionOnly(sampled: true, debug: false)
            case "d": return .decisionOnly(sampled: true, debug: true)
            default: return nil
            }
        }
        guard parts.count >= 2, parts.count <= 4,
              let traceID = parseTraceID(parts[0]),
              let spanID = SpanID(hex: parts[1].lowercased())
        else { return nil }
        var sampled: Bool?
        var debug = false
        if parts.count >= 3 {
            switch parts[2] {
            case "0": sampled = false
            case "1": sampled = true
            case "d": sampled = true; debug = true
            default: return nil
            }
        }
        var parent: SpanID?
        if parts.count == 4 {
            guard let p = SpanID(hex: parts[3].lowercased()) else { return nil }
            parent = p
        }
        return .context(TraceContext(traceID: traceID, spanID: spanID, parentSpanID: parent, sampled: sampled, debug: debug))
    }

    @inlinable
    public static func injectMulti(_ context: TraceContext, into headers: inout some HeaderCarrier) {
        if context.parentSpanID == nil { headers.remove(parentSpanIDHeader) }
        if context.debug { headers.remove(sampledHeader) } else { headers.remove(flagsHeader) }
        if !context.debug && context.sampled == nil { headers.remove(sampledHeader) }
        forEachMultiHeader(context) { headers.replace($0, with: $1) }
    }

    /// The multi-header form's fields for `context`, in order (`injectMulti` without the clearing).
    @inlinable
    public static func forEachMultiHeader(_ context: TraceContext, _ emit: (String, String) -> Void) {
        emit("X-B3-TraceId", context.traceID.hex)
        emit("X-B3-SpanId", context.spanID.hex)
        if let parent = context.parentSpanID { emit("X-B3-ParentSpanId", parent.hex) }
        if context.debug {
            emit("X-B3-Flags", "1")
        } else if let sampled = context.sampled {
            emit("X-B3-Sampled", sampled ? "1" : "0")
        }
    }

    /// `{traceid}-{spanid}[-{decision}[-{parentspanid}]]`, written into one string.
    public static func formatSingle(_ context: TraceContext) -> String {
        let traceID = context.traceID
        let idLength = traceID.high == 0 ? 16 : 32
        let decision: UInt8? = context.debug ? UInt8(ascii: "d") : context.sampled.map { $0 ? UInt8(ascii: "1") : UInt8(ascii: "0") }
        let parent = decision == nil ? nil : context.parentSpanID
        let length = idLength + 17 + (decision == nil ? 0 : 2) + (parent == nil ? 0 : 17)
        return String(unsafeUninitializedCapacity: length) { b in
            var i = 0
            if idLength == 32 {
                Hex.write(traceID.high, into: b, at: 0)
                i = 16
            }
            Hex.write(traceID.low, into: b, at: i)
            i += 16
            b[i] = UInt8(ascii: "-")
            Hex.write(context.spanID.value, into: b, at: i + 1)
            i += 17
            if let decision {
                b[i] = UInt8(ascii: "-")
                b[i + 1] = decision
                i += 2
            }
            if let parent {
                b[i] = UInt8(ascii: "-")
                Hex.write(parent.value, into: b, at: i + 1)
                i += 17
            }
            return i
        }
    }

    @inlinable
    public static func injectSingle(_ context: TraceContext, into headers: inout some HeaderCarrier) {
        headers.replace(singleHeader, with: formatSingle(context))
    }

    /// B3 trace ids are 16 or 32 lower-hex characters; upper case is tolerated.
    static func parseTraceID(_ raw: String) -> TraceID? {
        TraceID(hex: raw.trimmingCharacters(in: " ").lowercased())
    }

    static func parseSampled(_ raw: String) -> Bool? {
        switch raw.trimmingCharacters(in: " ").lowercased() {
        case "1", "true", "d": return true
        case "0", "false": return false
        default: return nil
        }
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String { String(Substring(self).trimmingCharacters(in: set)) }
}
