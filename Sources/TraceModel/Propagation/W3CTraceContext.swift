/// W3C Trace Context (`traceparent`, `tracestate`), level 1 rules: invalid headers are ignored
/// (the trace restarts), higher versions are parsed forward-compatibly, and `tracestate` is
/// dropped when `traceparent` is invalid.
public enum W3CTraceContext {
    public static let traceparent = "traceparent"
    public static let tracestate = "tracestate"

    /// Generic only for the header lookups (inlinable, so callers in other modules specialize
    /// it for their carrier instead of going through runtime generic metadata per request).
    @inlinable
    public static func extract(_ headers: some HeaderCarrier) -> TraceContext? {
        guard let value = headers.first(traceparent) else { return nil }
        return extract(traceparent: value, tracestate: { headers.first(tracestate) })
    }

    /// `extract` on values already looked up; `tracestate` is read only for a valid traceparent.
    public static func extract(traceparent value: String, tracestate: () -> String?) -> TraceContext? {
        guard var context = parse(value) else { return nil }
        if let state = tracestate(), isValidTraceState(state) {
            context.traceState = state
        }
        return context
    }

    /// `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`.
    public static func parse(_ value: String) -> TraceContext? {
        let utf8 = Array(value.trimmingCharacters(in: " ").utf8)
        guard utf8.count >= 55 else { return nil }
        guard let version = Hex.parseUInt64(utf8[0..<2]), version != 0xFF, !hasUpperHex(utf8[0..<55]) else { return nil }
        // Version 00 is exactly 55 bytes; later versions may append "-…" fields we ignore.
        if version == 0 { guard utf8.count == 55 else { return nil } } else if utf8.count > 55 { guard utf8[55] == UInt8(ascii: "-") else { return nil } }
        guard utf8[2] == UInt8(ascii: "-"), utf8[35] == UInt8(ascii: "-"), utf8[52] == UInt8(ascii: "-") else { return nil }
        guard let traceID = TraceID(hex: String(decoding: utf8[3..<35], as: UTF8.self)),
              let spanID = SpanID(hex: String(decoding: utf8[36..<52], as: UTF8.self)),
              let flags = Hex.parseUInt64(utf8[53..<55])
        else { return nil }
        return TraceContext(traceID: traceID, spanID: spanID, sampled: flags & 1 == 1)
    }

    /// Written byte by byte into one string (it is built for every proxied request).
    public static func format(_ context: TraceContext) -> String {
        String(unsafeUninitializedCapacity: 55) { b in
            b[0] = UInt8(ascii: "0"); b[1] = UInt8(ascii: "0"); b[2] = UInt8(ascii: "-")
            Hex.write(context.traceID.high, into: b, at: 3)
            Hex.write(context.traceID.low, into: b, at: 19)
            b[35] = UInt8(ascii: "-")
            Hex.write(context.spanID.value, into: b, at: 36)
            b[52] = UInt8(ascii: "-")
            b[53] = UInt8(ascii: "0")
            b[54] = context.sampled == true || context.debug ? UInt8(ascii: "1") : UInt8(ascii: "0")
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

    private static func hasUpperHex(_ bytes: ArraySlice<UInt8>) -> Bool {
        bytes.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "F") }
    }

    /// Loose check: at most 32 comma-separated `key=value` members of printable ASCII.
    @usableFromInline
    static func isValidTraceState(_ value: String) -> Bool {
        let members = value.split(separator: ",", omittingEmptySubsequences: true)
        guard members.count <= 32, value.utf8.count <= 512 else { return false }
        for member in members {
            let trimmed = member.trimmingCharacters(in: " ")
            guard !trimmed.isEmpty else { continue }
            guard let eq = trimmed.firstIndex(of: "="), eq != trimmed.startIndex,
                  trimmed.utf8.allSatisfy({ $0 >= 0x20 && $0 <= 0x7E })
            else { return false }
        }
        return true
    }
}
