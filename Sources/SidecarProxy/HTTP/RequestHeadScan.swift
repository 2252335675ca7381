import NIOHTTP1
import TraceModel

/// One pass over a request's headers: the values the proxy acts on, and the headers it forwards
/// as they came. Hop-by-hop headers, trace-context headers (re-written for this hop), the
/// request id and meshtrace's own markers are left out of `kept`; the proxy appends its versions.
/// Before this, building the upstream request scanned the header list some thirty times
/// (a lookup, remove or replace per header name), which showed in profiles.
struct RequestHeadScan {
    /// Forwarded unchanged, in their original order.
    var kept: [(String, String)] = []
    /// Index of `Host` in `kept` (validation has already refused duplicates).
    var hostIndex: Int?
    var host: String?
    var userAgent: String?
    var requestID: String?
    var contentLength: String?
    var chunked = false
    /// `Expect: 100-continue`: answered by the proxy, not forwarded.
    var expectsContinue = false
    /// `x-envoy-downstream-service-cluster`: the calling service, from its sidecar.
    var downstreamCluster: String?
    /// `x-meshtrace-via` was present (loop detection).
    var loopMarked = false
    var clientTraceID: String?
    var forceTrace = false
    /// The incoming W3C and B3 headers, read by `TracePropagation.extract`.
    var trace = TraceHeaders()
    var connectionClose = false
    var connectionKeepAlive = false

    /// From the tokens already read (NIO's `isKeepAlive` would scan the headers once more).
    func keepAlive(_ version: HTTPVersion) -> Bool {
        HTTPSyntax.keepAlive(close: connectionClose, keepAlive: connectionKeepAlive, version: version)
    }

    init(_ headers: HTTPHeaders) {
        kept.reserveCapacity(headers.count + 8)
        var listed: [Substring] = []
        for (name, value) in headers {
            switch Self.classify(name) {
            case .forward:
                kept.append((name, value))
            case .host:
                if host == nil { host = value }
                hostIndex = kept.count
                kept.append((name, value))
            case .userAgent:
                if userAgent == nil { userAgent = value }
                kept.append((name, value))
            case .clientTraceID:
                if clientTraceID == nil { clientTraceID = value }
                kept.append((name, value))
            case .forceTrace:
                forceTrace = true
                kept.append((name, value))
            case .expect:
                if value.trimmingSpaces.lowercased() == "100-continue" {
                    expectsContinue = true
                } else {
                    kept.append((name, value))
                }
            case .contentLength:
                if contentLength == nil { contentLength = value }
                kept.append((name, value))
            case .connection:
                for token in value.split(separator: ",") {
                    let t = token.trimmingSpaces
                    if t.equalsLowercaseASCII("close") {
                        connectionClose = true
                    } else if t.equalsLowercaseASCII("keep-alive") {
                        connectionKeepAlive = true
                    } else if !t.isEmpty {
                        listed.append(t)
                    }
                }
            case .transferEncoding:
                if value.lowercased().contains("chunked") { chunked = true }
            case .hopByHop:
                break
            case .requestID:
                if requestID == nil { requestID = value }
            case .downstreamCluster:
                if downstreamCluster == nil { downstreamCluster = value }
            case .loopMarker:
                loopMarked = true
            case .trace(let slot):
                trace.set(slot, value)
            }
        }
        // Headers named by Connection are hop-by-hop too (rare: a second pass only then).
        if !listed.isEmpty {
            kept.removeAll { entry in listed.contains { entry.0.utf8.count == $0.utf8.count && entry.0.lowercased() == $0.lowercased() } }
            hostIndex = kept.firstIndex { $0.0.equalsLowercaseASCII("host") }
            if !kept.contains(where: { $0.0.equalsLowercaseASCII("content-length") }) { contentLength = nil }
        }
    }

    enum Kind: Equatable {
        case forward, host, userAgent, clientTraceID, forceTrace, expect, contentLength
        case connection, transferEncoding, hopByHop
        case requestID, downstreamCluster, loopMarker
        case trace(TraceHeaders.Slot)
    }

    /// By length first, so most names are settled with one or two comparisons.
    static func classify(_ name: String) -> Kind {
        switch name.utf8.count {
        case 2:
            if name.equalsLowercaseASCII("te") { return .hopByHop }
            if name.equalsLowercaseASCII("b3") { return .trace(.b3) }
        case 4:
            if name.equalsLowercaseASCII("host") { return .host }
        case 6:
            if name.equalsLowercaseASCII("expect") { return .expect }
        case 7:
            if name.equalsLowercaseASCII("trailer") || name.equalsLowercaseASCII("upgrade") { return .hopByHop }
        case 10:
            if name.equalsLowercaseASCII("user-agent") { return .userAgent }
            if name.equalsLowercaseASCII("connection") { return .connection }
            if name.equalsLowercaseASCII("keep-alive") { return .hopByHop }
            if name.equalsLowercaseASCII("tracestate") { return .trace(.tracestate) }
            if name.equalsLowercaseASCII("x-b3-flags") { return .trace(.b3Flags) }
        case 11:
            if name.equalsLowercaseASCII("traceparent") { return .trace(.traceparent) }
            if name.equalsLowercaseASCII("x-b3-spanid") { return .trace(.b3SpanID) }
        case 12:
            if name.equalsLowercaseASCII("x-request-id") { return .requestID }
            if name.equalsLowercaseASCII("x-b3-traceid") { return .trace(.b3TraceID) }
            if name.equalsLowercaseASCII("x-b3-sampled") { return .trace(.b3Sampled) }
        case 14:
            if name.equalsLowercaseASCII("content-length") { return .contentLength }
        case 15:
            if name.equalsLowercaseASCII(ProxyHandler.loopHeader) { return .loopMarker }
        case 16:
            if name.equalsLowercaseASCII("proxy-connection") { return .hopByHop }
        case 17:
            if name.equalsLowercaseASCII("transfer-encoding") { return .transferEncoding }
            if name.equalsLowercaseASCII("x-b3-parentspanid") { return .trace(.b3ParentSpanID) }
            if name.equalsLowercaseASCII("x-client-trace-id") { return .clientTraceID }
        case 18:
            if name.equalsLowercaseASCII("proxy-authenticate") { return .hopByHop }
        case 19:
            if name.equalsLowercaseASCII("proxy-authorization") { return .hopByHop }
            if name.equalsLowercaseASCII("x-envoy-force-trace") { return .forceTrace }
        case 34:
            if name.equalsLowercaseASCII("x-envoy-downstream-service-cluster") { return .downstreamCluster }
        default:
            break
        }
        return .forward
    }
}

/// The incoming trace headers (first value of each), as a `HeaderCarrier` for extraction.
struct TraceHeaders: HeaderCarrier {
    enum Slot: CaseIterable {
        case traceparent, tracestate, b3, b3TraceID, b3SpanID, b3ParentSpanID, b3Sampled, b3Flags

        var name: String {
            switch self {
            case .traceparent: return W3CTraceContext.traceparent
            case .tracestate: return W3CTraceContext.tracestate
            case .b3: return B3Propagation.singleHeader
            case .b3TraceID: return B3Propagation.traceIDHeader
            case .b3SpanID: return B3Propagation.spanIDHeader
            case .b3ParentSpanID: return B3Propagation.parentSpanIDHeader
            case .b3Sampled: return B3Propagation.sampledHeader
            case .b3Flags: return B3Propagation.flagsHeader
            }
        }

        private static let byName = allCases.map { ($0.name, $0) }

        init?(name: String) {
            // Propagation asks with the header constants themselves: equal strings compare at
            // once, where the general classification folds case byte by byte.
            if let slot = Self.byName.first(where: { $0.0 == name })?.1 {
                self = slot
                return
            }
            guard case .trace(let slot) = RequestHeadScan.classify(name) else { return nil }
            self = slot
        }
    }

    // Eight fields rather than an array: no allocation per request.
    private var traceparent, tracestate, b3, b3TraceID, b3SpanID, b3ParentSpanID, b3Sampled, b3Flags: String?

    private func value(_ slot: Slot) -> String? {
        switch slot {
        case .traceparent: return traceparent
        case .tracestate: return tracestate
        case .b3: return b3
        case .b3TraceID: return b3TraceID
        case .b3SpanID: return b3SpanID
        case .b3ParentSpanID: return b3ParentSpanID
        case .b3Sampled: return b3Sampled
        case .b3Flags: return b3Flags
        }
    }

    private mutating func store(_ slot: Slot, _ value: String?) {
        switch slot {
        case .traceparent: traceparent = value
        case .tracestate: tracestate = value
        case .b3: b3 = value
        case .b3TraceID: b3TraceID = value
        case .b3SpanID: b3SpanID = value
        case .b3ParentSpanID: b3ParentSpanID = value
        case .b3Sampled: b3Sampled = value
        case .b3Flags: b3Flags = value
        }
    }

    /// No trace header arrived (an edge request, or an app that forwards nothing).
    var isEmpty: Bool {
        traceparent == nil && tracestate == nil && b3 == nil && b3TraceID == nil && b3SpanID == nil && b3ParentSpanID == nil
            && b3Sampled == nil && b3Flags == nil
    }

    /// Keeps the first value, as `HTTPHeaders.first(name:)` would have returned.
    mutating func set(_ slot: Slot, _ value: String) {
        if self.value(slot) == nil { store(slot, value) }
    }

    func first(_ name: String) -> String? {
        Slot(name: name).flatMap { value($0) }
    }

    mutating func replace(_ name: String, with value: String) {
        if let slot = Slot(name: name) { store(slot, value) }
    }

    mutating func remove(_ name: String) {
        if let slot = Slot(name: name) { store(slot, nil) }
    }
}

/// The headers a hop adds after the kept ones (trace context, request id, markers): a short list,
/// so replace and remove look only here.
struct AddedHeaders: HeaderCarrier {
    var fields: [(String, String)] = []

    init() {}

    /// Room for `count` fields up front (trace injection adds up to eight: growing one at a
    /// time reallocated four times per request).
    init(reservingCapacity count: Int) {
        fields.reserveCapacity(count)
    }

    func first(_ name: String) -> String? {
        fields.first { $0.0.equalsLowercaseASCII(name) }?.1
    }

    mutating func replace(_ name: String, with value: String) {
        remove(name)
        fields.append((name, value))
    }

    mutating func remove(_ name: String) {
        fields.removeAll { $0.0.equalsLowercaseASCII(name) }
    }

    mutating func add(_ name: String, _ value: String) {
        fields.append((name, value))
    }
}
