import SwiftProtobuf
import TraceModel

/// SkyWalking agents' trace segments as our spans.
///
/// - Ids: `SkyWalkingIDs` (the same mapping the sidecar applies to `sw8`, so an agent's spans and
///   the sidecar's join). A span's parent is the span `parentSpanId` of its own segment, or, for
///   a segment's first span, its first reference (the caller's exit span across processes, or
///   the span that handed work to this thread). Further references become links, as do
///   references into another trace (a batch consumer's messages).
/// - Kinds: entry → SERVER, exit → CLIENT, local → INTERNAL; on the MQ layer entry → CONSUMER
///   and exit → PRODUCER, as SkyWalking defines entry and exit there.
/// - Tags become attributes, logs events (named by their `event` item, else "log"), `isError`
///   the error status, the component id its SkyWalking name (`component`), `peer` the
///   `peer.address` attribute.
///
/// Errors: a segment without its ids or service is rejected whole; a span that cannot be placed
/// or timed is rejected alone; each rejection names its field. Everything else is kept.
package enum SkyWalkingSegment {
    /// Appends `segment`'s spans to `batch`, its rejections to `batch.rejected`.
    /// - Parameter spanLocations: where each span was in the body, when not `location.spans[i]`.
    package static func append(
        _ segment: Skywalking_V3_SegmentObject, at location: String, spanLocations: [String]? = nil, to batch: inout DecodedBatch,
        limits: WireLimits = .default
    ) {
        for (field, value) in [("traceId", segment.traceID), ("traceSegmentId", segment.traceSegmentID), ("service", segment.service)]
        where value.isEmpty {
            batch.rejected.append(SpanRejection(location: location + "." + field, reason: "required, got an empty value; the segment's \(segment.spans.count) span(s) were not stored"))
            return
        }
        var limiter = ValueLimiter(limits)
        let traceID = SkyWalkingIDs.traceID(segment.traceID)
        let hashedTraceID = SkyWalkingIDs.nativeTraceID(segment.traceID) == nil
        var resource = [Attribute("telemetry.sdk.name", .string("skywalking"))]
        if !segment.serviceInstance.isEmpty { resource.append(Attribute("service.instance.id", .string(limiter.limit(segment.serviceInstance)))) }

        for (i, object) in segment.spans.enumerated() {
            let at = spanLocations.map { $0[i] } ?? "\(location).spans[\(i)]"
            if let problem = problem(with: object) {
                batch.rejected.append(SpanRejection(location: at + "." + problem.field, reason: problem.reason))
                continue
            }
            var span = Span(
                traceID: traceID, spanID: SkyWalkingIDs.spanID(segment: segment.traceSegmentID, index: object.spanID),
                kind: kind(object), name: object.operationName.isEmpty ? "unknown" : limiter.limit(object.operationName),
                startTimeNanos: UInt64(object.startTime) &* 1_000_000,
                durationNanos: UInt64(object.endTime - object.startTime) &* 1_000_000,
                serviceName: segment.service, resource: resource,
                status: object.isError ? SpanStatus(code: .error) : SpanStatus(code: .unset),
                scope: InstrumentationScope(name: "skywalking"))

            var links: [Skywalking_V3_SegmentReference] = []
            if object.parentSpanID >= 0 {
                span.parentSpanID = SkyWalkingIDs.spanID(segment: segment.traceSegmentID, index: object.parentSpanID)
                links = object.refs
            } else {
                for ref in object.refs {
                    if span.parentSpanID == nil, ref.traceID.isEmpty || ref.traceID == segment.traceID {
                        span.parentSpanID = SkyWalkingIDs.spanID(segment: ref.parentTraceSegmentID, index: ref.parentSpanID)
                        if !ref.parentService.isEmpty { span.attributes.append(Attribute("sw8.parent.service", .string(limiter.limit(ref.parentService)))) }
                        if !ref.parentEndpoint.isEmpty { span.attributes.append(Attribute("sw8.parent.endpoint", .string(limiter.limit(ref.parentEndpoint)))) }
                        if !ref.networkAddressUsedAtPeer.isEmpty {
                            span.attributes.append(Attribute("sw8.network_address_used_at_peer", .string(limiter.limit(ref.networkAddressUsedAtPeer))))
                        }
                    } else {
                        links.append(ref)
                    }
                }
            }
            span.links = links.compactMap { ref in
                guard !ref.parentTraceSegmentID.isEmpty, ref.parentSpanID >= 0 else { return nil }
                return SpanLink(
                    traceID: ref.traceID.isEmpty ? traceID : SkyWalkingIDs.traceID(ref.traceID),
                    spanID: SkyWalkingIDs.spanID(segment: ref.parentTraceSegmentID, index: ref.parentSpanID),
                    attributes: [Attribute("sw8.ref_type", .string(ref.refType == .crossThread ? "CrossThread" : "CrossProcess"))])
            }

            for tag in object.tags where !tag.key.isEmpty {
                span.attributes.append(Attribute(limiter.limit(tag.key), .string(limiter.limit(tag.value))))
            }
            span.attributes.append(Attribute("component", .string(SkyWalkingComponents.name(object.componentID))))
            span.attributes.append(Attribute("sw8.span_layer", .string(layerName(object.spanLayer))))
            if !object.peer.isEmpty { span.attributes.append(Attribute("peer.address", .string(limiter.limit(object.peer)))) }
            span.attributes.append(Attribute("sw8.segment_id", .string(limiter.limit(segment.traceSegmentID))))
            span.attributes.append(Attribute("sw8.span_id", .int(Int64(object.spanID))))
            if hashedTraceID { span.attributes.append(Attribute("sw8.trace_id", .string(limiter.limit(segment.traceID)))) }
            if object.isError { span.attributes.append(Attribute("error", .bool(true))) }

            span.events = object.logs.map { log in
                let name = log.data.first { $0.key == "event" }?.value ?? "log"
                return SpanEvent(
                    timeNanos: UInt64(max(0, log.time)) &* 1_000_000, name: limiter.limit(name),
                    attributes: log.data.filter { $0.key != "event" && !$0.key.isEmpty }.map { Attribute(limiter.limit($0.key), .string(limiter.limit($0.value))) })
            }
            batch.spans.append(span)
        }
        batch.truncatedValues += limiter.truncated
    }

    /// One binary `SegmentObject` (a gRPC `collect` message) as spans.
    package static func decodeProto(_ bytes: some Collection<UInt8>, at location: String, limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        let segment: Skywalking_V3_SegmentObject
        do {
            segment = try Skywalking_V3_SegmentObject(serializedBytes: Array(bytes))
        } catch {
            throw WireError("\(location): not a SkyWalking SegmentObject: \(error)")
        }
        var batch = DecodedBatch()
        append(segment, at: location, to: &batch, limits: limits)
        return batch
    }

    /// A JSON body of `/v3/segment` (one object) or `/v3/segments` (an array) as spans: segments
    /// that cannot be read are rejected with their field named, the others kept.
    package static func decodeJSON(_ bytes: [UInt8], array: Bool, limits: WireLimits = .default) throws(WireError) -> DecodedBatch {
        var batch = DecodedBatch()
        for (location, result) in try SkyWalkingJSON.segments(bytes, array: array, limits: limits) {
            switch result {
            case .success(let decoded):
                for error in decoded.spanErrors {
                    let (path, reason) = split(error.message)
                    batch.rejected.append(SpanRejection(location: path, reason: reason + "; the span was not stored"))
                }
                if decoded.spanErrors.isEmpty || !decoded.segment.spans.isEmpty {
                    append(decoded.segment, at: location, spanLocations: decoded.spanLocations, to: &batch, limits: limits)
                }
            case .failure(let error):
                // The error's message starts with its full path; keep it as the location.
                let (path, reason) = split(error.message)
                batch.rejected.append(SpanRejection(location: path, reason: reason + "; the segment was not stored"))
            }
        }
        return batch
    }

    // MARK: - Helpers

    static func kind(_ span: Skywalking_V3_SpanObject) -> SpanKind {
        switch (span.spanType, span.spanLayer) {
        case (.entry, .mq): return .consumer
        case (.exit, .mq): return .producer
        case (.entry, _): return .server
        case (.exit, _): return .client
        default: return .internal
        }
    }

    static func layerName(_ layer: Skywalking_V3_SpanLayer) -> String {
        Skywalking_V3_SpanLayer.protoNames.indices.contains(layer.rawValue) ? Skywalking_V3_SpanLayer.protoNames[layer.rawValue] : String(layer.rawValue)
    }

    /// Why a span cannot be stored, naming the field; nil when it can.
    static func problem(with span: Skywalking_V3_SpanObject) -> (field: String, reason: String)? {
        if span.spanID < 0 { return ("spanId", "must be 0 or more, got \(span.spanID)") }
        if span.parentSpanID < -1 { return ("parentSpanId", "must be -1 (none) or a span of the segment, got \(span.parentSpanID)") }
        if span.parentSpanID == span.spanID { return ("parentSpanId", "a span cannot be its own parent (\(span.spanID))") }
        if case .UNRECOGNIZED(let n) = span.spanType { return ("spanType", "unknown value \(n); expected Entry (0), Exit (1) or Local (2)") }
        if span.startTime <= 0 { return ("startTime", "must be epoch milliseconds, got \(span.startTime)") }
        if span.endTime < span.startTime { return ("endTime", "\(span.endTime) is before startTime \(span.startTime)") }
        // Milliseconds that overflow nanoseconds are not a time any agent sends.
        if span.endTime > Int64(UInt64.max / 1_000_000) { return ("endTime", "\(span.endTime) is not epoch milliseconds") }
        return nil
    }

    private static func split(_ message: String) -> (String, String) {
        guard let colon = message.range(of: ": ") else { return ("segment", message) }
        return (String(message[..<colon.lowerBound]), String(message[colon.upperBound...]))
    }
}
