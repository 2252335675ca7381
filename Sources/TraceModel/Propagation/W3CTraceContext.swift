/// W3C Trace Context Level 2 (`traceparent`, `tracestate`, https://www.w3.org/TR/trace-context-2/).
/// An invalid `traceparent` is ignored (the trace restarts) and takes `tracestate` with it; a
/// higher version is read as far as version 00 defines it; two `traceparent` fields combine into
/// a value that is not one (RFC 9110 §5.3), so they restart the trace too; several `tracestate`
/// fields are one list (`W3CTraceState`).
public enum W3CTraceContext {
    public static let traceparent = "traceparent"
    public static let tracestate = "tracestate"

    /// trace-flags bit 0: the caller may have recorded trace data.
    public static let sampledFlag: UInt8 = 0x01
    /// trace-flags bit 1 (Level 2): the trace id's right-most 7 bytes are random.
    public static let randomTraceIDFlag: UInt8 = 0x02

    /// Generic only for the header lookups (inlinable, so callers in other modules specialize
    /// it for their carrier instead of going through runtime generic metadata per request).
    @inlinable
    public static func extract(_ headers: some HeaderCarrier) -> TraceContext? {
        guard let value = headers.combined(traceparent) else { return nil }
        return extract(traceparent: value, tracestate: { headers.combined(tracestate) })
    }

    /// `extract` on values already looked up (each the field's lines combined); `tracestate` is
    /// read only for a valid traceparent ("if the vendor failed to parse traceparent, it MUST
    /// NOT attempt to parse tracestate"), and a bad one never voids the traceparent.
    public static func extract(traceparent value: String, tracestate: () -> String?) -> TraceContext? {
        guard var context = parse(value) else { return nil }
        if let state = tracestate() {
            context.traceState = W3CTraceState.normalized(state)
        }
        return context
    }

    /// `version-trace-id-parent-id-trace-flags`, lower-case hex, with optional whitespace
    /// around it (HTTP's OWS, spaces and tabs). Version 00 is exactly 55 characters; a higher
    /// version (not ff) may go on after a dash, and only the fields and flags 00 defines are read.
    public static func parse(_ value: String) -> TraceContext? {
        var value = value
        return value.withUTF8 { parse(UnsafeRawBufferPointer($0)) }
    }

    private static func parse(_ raw: UnsafeRawBufferPointer) -> TraceContext? {
        var start = 0
        var end = raw.count
        while start < end, raw[start] == 0x20 || raw[start] == 0x09 { start += 1 }
        while end > start, raw[end - 1] == 0x20 || raw[end - 1] == 0x09 { end -= 1 }
        let length = end - start
        guard length >= 55 else { return nil }
        let b = UnsafeRawBufferPointer(rebasing: raw[start..<end])
        guard let version = lowerHex(b, 0, 2), version != 0xFF, b[2] == UInt8(ascii: "-") else { return nil }
        if version == 0 {
            guard length == 55 else { return nil }
        } else if length > 55 {
            guard b[55] == UInt8(ascii: "-") else { return nil }
        }
        guard b[35] == UInt8(ascii: "-"), b[52] == UInt8(ascii: "-"),
              let high = lowerHex(b, 3, 16), let low = lowerHex(b, 19, 16), let span = lowerHex(b, 36, 16),
              let flags = lowerHex(b, 53, 2),
              high != 0 || low != 0, let spanID = SpanID(span)
        else { return nil }
        return TraceContext(
            traceID: TraceID(high: high, low: low), spanID: spanID, sampled: flags & UInt64(sampledFlag) != 0,
            randomTraceID: flags & UInt64(randomTraceIDFlag) != 0)
    }

    /// `count` lower-case hex digits at `offset` (HEXDIGLC: upper case is not a traceparent).
    private static func lowerHex(_ b: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> UInt64? {
        var value: UInt64 = 0
        for i in offset..<(offset + count) {
            let c = b[i]
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c &- UInt8(ascii: "a") &+ 10
            default: return nil
            }
            value = value << 4 | UInt64(digit)
        }
        return value
    }

    /// Written byte by byte into one string (it is built for every proxied request). Always
    /// version 00 ("the highest version known"), with only the flags it defines: sampled and
    /// random-trace-id; the rest are zero, as the spec requires.
    public static func format(_ context: TraceContext) -> String {
        String(unsafeUninitializedCapacity: 55) { b in
            b[0] = UInt8(ascii: "0"); b[1] = UInt8(ascii: "0"); b[2] = UInt8(ascii: "-")
            Hex.write(context.traceID.high, into: b, at: 3)
            Hex.write(context.traceID.low, into: b, at: 19)
            b[35] = UInt8(ascii: "-")
            Hex.write(context.spanID.value, into: b, at: 36)
            b[52] = UInt8(ascii: "-")
            b[53] = UInt8(ascii: "0")
            let sampled: UInt8 = context.sampled == true || context.debug ? 1 : 0
            let random: UInt8 = context.randomTraceID ? 2 : 0
            b[54] = UInt8(ascii: "0") + (sampled | random)
            return 55
        }
    }

    @inlinable
    public static func inject(_ context: TraceContext, into headers: inout some HeaderCarrier) {
        headers.replace(traceparent, with: format(context))
        if let state = context.traceState, !state.isEmpty {
            headers.replace(tracestate, with: state)
        } else {
            headers.remove(tracestate)
        }
    }
}
