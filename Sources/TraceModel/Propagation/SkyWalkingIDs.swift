/// SkyWalking's ids mapped onto ours, the same way in the sidecar (reading `sw8`) and in the
/// collector (reading agents' segments), so a trace seen both ways is one trace.
///
/// - Trace id: SkyWalking's is a free-form string. Exactly 32 lower-case hex digits (what the
///   sidecar writes when it starts a trace, and the Python agent's uuid1 ids) is taken as our
///   128-bit id as it is; anything else (the Java agent's `instance.thread.time` ids) is hashed.
/// - Span id: SkyWalking names a span by its segment id and its index in the segment. A segment
///   id of 16 lower-case hex digits with index 0 (what the sidecar writes: its own span id) is
///   that span id; anything else is hashed.
///
/// The hash is FNV-1a 64 over the UTF-8 bytes, finished with SplitMix64's mixer: stable across
/// processes, platforms and releases (it is part of the wire contract: README, "SkyWalking").
public enum SkyWalkingIDs {
    /// Our trace id for a SkyWalking trace id.
    public static func traceID(_ skyWalking: String) -> TraceID {
        if let native = nativeTraceID(skyWalking) { return native }
        let bytes = skyWalking.utf8
        var id = TraceID(high: SplitMix64.mix(fnv1a(bytes, basis: basisHigh)), low: SplitMix64.mix(fnv1a(bytes, basis: basisLow)))
        if !id.isValid { id.low = 1 }
        return id
    }

    /// The id itself when it is already ours (32 lower-case hex digits, not all zero), else nil:
    /// only then must the original string travel beside the trace (`TraceContext.sw8TraceID`).
    public static func nativeTraceID(_ skyWalking: String) -> TraceID? {
        guard skyWalking.utf8.count == 32, skyWalking.utf8.allSatisfy(isLowerHex) else { return nil }
        return TraceID(hex: skyWalking)
    }

    /// Our span id for span `index` of segment `segment`.
    public static func spanID(segment: String, index: Int32) -> SpanID {
        if index == 0, segment.utf8.count == 16, segment.utf8.allSatisfy(isLowerHex), let own = SpanID(hex: segment) {
            return own
        }
        var hash = fnv1a(segment.utf8, basis: basisSpan)
        hash = fnv1a(CollectionOfOne(UInt8(ascii: "-")), basis: hash)
        hash = fnv1a(String(index).utf8, basis: hash)
        return SpanID(SplitMix64.mix(hash)) ?? SpanID(unchecked: 1)
    }

    /// The segment id the sidecar writes for its own span (index 0), so `spanID` maps it back.
    public static func segmentID(for span: SpanID) -> String { span.hex }

    /// The SkyWalking trace id to write for `context`: the original when the trace came in as a
    /// SkyWalking id we hashed, else our id in 32 hex digits.
    public static func skyWalkingTraceID(_ context: TraceContext) -> String {
        context.sw8TraceID ?? context.traceID.hex32
    }

    // FNV-1a's 64-bit offset basis, and two others so the trace id's halves differ.
    private static let basisHigh: UInt64 = 0xCBF2_9CE4_8422_2325
    private static let basisLow: UInt64 = 0x8422_2325_CBF2_9CE4
    private static let basisSpan: UInt64 = 0x6C62_272E_07BB_0142

    private static func fnv1a(_ bytes: some Sequence<UInt8>, basis: UInt64) -> UInt64 {
        var hash = basis
        for b in bytes {
            hash ^= UInt64(b)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }

    private static func isLowerHex(_ c: UInt8) -> Bool {
        (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
    }
}
