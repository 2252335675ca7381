/// SkyWalking cross-process propagation, v3: the `sw8` header,
/// `SAMPLE-TRACEID-SEGMENTID-SPANINDEX-SERVICE-INSTANCE-ENDPOINT-TARGET`, eight `-`-separated
/// fields, all but the sample flag and the span index Base64-encoded. `sw8-correlation` and
/// `sw8-x` are not read here: they pass through as any other header.
///
/// A malformed `sw8` is ignored (the trace restarts), as for the other formats. Required, as
/// SkyWalking's own agents require them before they trust a header: a trace id, a segment id and
/// a span index of zero or more; the four names must be valid Base64 (they may be empty here, but
/// the sidecar always writes them non-empty, because the Python agent refuses a header otherwise).
public enum Sw8Propagation {
    public static let header = "sw8"

    /// The header's fields, decoded.
    public struct Fields: Hashable, Sendable {
        public var sampled: Bool
        public var traceID: String
        public var segmentID: String
        public var spanIndex: Int32
        /// The calling service, its instance and its endpoint (SkyWalking's "parent" names).
        public var service: String
        public var serviceInstance: String
        public var endpoint: String
        /// The address the caller used to reach this hop (`host:port`).
        public var targetAddress: String

        public init(
            sampled: Bool, traceID: String, segmentID: String, spanIndex: Int32, service: String, serviceInstance: String,
            endpoint: String, targetAddress: String
        ) {
            self.sampled = sampled
            self.traceID = traceID
            self.segmentID = segmentID
            self.spanIndex = spanIndex
            self.service = service
            self.serviceInstance = serviceInstance
            self.endpoint = endpoint
            self.targetAddress = targetAddress
        }
    }

    /// What a hop writes about itself besides the ids: SkyWalking's service, instance, endpoint
    /// and the address it was called on. Base64 of the two names fixed per sidecar is done once.
    public struct Origin: Hashable, Sendable {
        public var serviceBase64: String
        public var instanceBase64: String
        public var endpoint: String
        public var targetAddress: String

        public init(service: String, instance: String, endpoint: String, targetAddress: String) {
            self.init(serviceBase64: Base64.encode(service), instanceBase64: Base64.encode(instance), endpoint: endpoint, targetAddress: targetAddress)
        }

        public init(serviceBase64: String, instanceBase64: String, endpoint: String, targetAddress: String) {
            self.serviceBase64 = serviceBase64
            self.instanceBase64 = instanceBase64
            self.endpoint = endpoint
            self.targetAddress = targetAddress
        }
    }

    public static func parse(_ value: String) -> Fields? {
        let parts = value.trimmingCharacters(in: " ").split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 8 else { return nil }
        let sampled: Bool
        switch parts[0] {
        case "1": sampled = true
        case "0": sampled = false
        default: return nil
        }
        guard let traceID = Base64.decodeString(parts[1]), !traceID.isEmpty,
              let segmentID = Base64.decodeString(parts[2]), !segmentID.isEmpty,
              let spanIndex = Int32(parts[3]), spanIndex >= 0,
              let service = Base64.decodeString(parts[4]),
              let instance = Base64.decodeString(parts[5]),
              let endpoint = Base64.decodeString(parts[6]),
              let target = Base64.decodeString(parts[7])
        else { return nil }
        return Fields(
            sampled: sampled, traceID: traceID, segmentID: segmentID, spanIndex: spanIndex, service: service,
            serviceInstance: instance, endpoint: endpoint, targetAddress: target)
    }

    /// The parent context `sw8` names, in our ids (`SkyWalkingIDs`); the original trace id is
    /// kept when it had to be hashed, so it is written on unchanged.
    public static func extract(_ value: String) -> TraceContext? {
        guard let fields = parse(value) else { return nil }
        return context(of: fields)
    }

    public static func context(of fields: Fields) -> TraceContext {
        var context = TraceContext(
            traceID: SkyWalkingIDs.traceID(fields.traceID),
            spanID: SkyWalkingIDs.spanID(segment: fields.segmentID, index: fields.spanIndex),
            sampled: fields.sampled)
        if SkyWalkingIDs.nativeTraceID(fields.traceID) == nil { context.sw8TraceID = fields.traceID }
        return context
    }

    public static func format(_ fields: Fields) -> String {
        [
            fields.sampled ? "1" : "0", Base64.encode(fields.traceID), Base64.encode(fields.segmentID), String(fields.spanIndex),
            Base64.encode(fields.service), Base64.encode(fields.serviceInstance), Base64.encode(fields.endpoint),
            Base64.encode(fields.targetAddress),
        ].joined(separator: "-")
    }

    /// `sw8` for a hop whose span is `context.spanID`: its own segment (the span id in hex) and
    /// span index 0, so the next hop's parent maps back to this span.
    public static func format(_ context: TraceContext, origin: Origin) -> String {
        // The endpoint and address are never empty: SkyWalking's agents drop a header that has
        // an empty field, and the trace would break at the app.
        let endpoint = origin.endpoint.isEmpty ? "/" : origin.endpoint
        let target = origin.targetAddress.isEmpty ? "-" : origin.targetAddress
        return [
            context.sampled == true || context.debug ? "1" : "0",
            Base64.encode(SkyWalkingIDs.skyWalkingTraceID(context)),
            Base64.encode(SkyWalkingIDs.segmentID(for: context.spanID)),
            "0",
            origin.serviceBase64, origin.instanceBase64, Base64.encode(endpoint), Base64.encode(target),
        ].joined(separator: "-")
    }
}

extension Base64 {
    /// The UTF-8 bytes of `text`, Base64-encoded (`sw8`'s names and ids).
    public static func encode(_ text: String) -> String { encode(Array(text.utf8)) }

    /// Base64 text decoded as UTF-8; nil when either step fails.
    static func decodeString(_ text: Substring) -> String? {
        guard let bytes = decode(String(text)) else { return nil }
        return String(validating: bytes, as: UTF8.self)
    }
}
