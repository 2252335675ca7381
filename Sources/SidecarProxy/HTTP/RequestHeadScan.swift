import NIOCore
import NIOHTTP1
import TraceModel

/// One pass over a request's header block: the values the proxy acts on, and the fields it
/// forwards as they came, kept as wire bytes (never split into strings). Hop-by-hop fields,
/// trace-context fields (re-written for this hop), the request id and meshtrace's own markers are
/// left out of `kept`; the proxy appends its versions. Host is kept apart too: the proxy writes
/// it first, rewritten for an absolute-form request.
/// Before this, the head was built into `HTTPHeaders` (two strings per field), scanned, and the
/// kept fields written out again: about a sixth of the event loop's instructions per request.
struct RequestHeadScan {
    /// Forwarded unchanged, in their original order: `Name: value` and CRLF each (the name as
    /// sent, the value without surrounding whitespace).
    var kept: ByteBuffer
    var host: String?
    /// Connection named Host as hop-by-hop: it is not forwarded (routing still reads it).
    var hostListedInConnection = false
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
    /// The incoming W3C, B3 and sw8 headers, read by `TracePropagation.extract` (sw8 only when
    /// configured; otherwise `TraceDecision.inject` writes it back as it came).
    var trace = TraceHeaders()
    var connectionClose = false
    var connectionKeepAlive = false
    /// `Connection: upgrade` and the `Upgrade` field's value (hop-by-hop: the proxy sends them
    /// on itself for the one upgrade it relays, WebSocket).
    var connectionUpgrade = false
    var upgrade: String?
    /// What `RequestRules` judges the framing by.
    var counts = RequestFieldCounts()

    /// A WebSocket handshake (RFC 6455): after it the connection carries the app's frames, which
    /// the proxy relays as bytes. Other upgrades (h2c) are dropped, as Envoy drops them unless told.
    var webSocketUpgrade: Bool {
        guard connectionUpgrade, let upgrade else { return false }
        return upgrade.split(separator: ",").contains { $0.trimmingSpaces.equalsLowercaseASCII("websocket") }
    }

    /// From the tokens already read (NIO's `isKeepAlive` would scan the headers once more).
    func keepAlive(_ version: HTTPVersion) -> Bool {
        HTTPSyntax.keepAlive(close: connectionClose, keepAlive: connectionKeepAlive, version: version)
    }

    /// Reads the fields of a head block (after its start line), checking each line's syntax;
    /// `framing` notes what delimits the body, as for any message.
    init(_ block: inout HeadBlock, framing: inout FramingFields, allocator: ByteBufferAllocator) throws(HTTPWireError) {
        let bytes = block.bytes
        kept = allocator.buffer(capacity: 0)
        var listed: [Substring] = []
        var failure: HTTPWireError?
        var out = allocator.buffer(capacity: 0)
        // Each kept line is at most two bytes longer than it came (a space after the colon, a CR).
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: 2 * bytes.count + 16) { target in
            var i = 0
            do throws(HTTPWireError) {
                try block.forEachField(&framing) { name, value, _ in
                    let kind = Self.classify(bytes, name)
                    if kind == .forward || self.note(kind, bytes, value, listed: &listed) {
                        i = HTTPHeadWriter.field(bytes, name: name, value: value, to: target, at: i)
                    }
                }
            } catch {
                failure = error
            }
            return i
        }
        if let failure { throw failure }
        kept = out
        // Fields named by Connection are hop-by-hop too (rare: a second pass only then).
        if !listed.isEmpty { dropListed(listed, allocator: allocator) }
    }

    /// The scan of a header list (tests, and callers that hold `HTTPHeaders`): the same reading,
    /// over the list written as a head block. Fields that are not valid HTTP are left out.
    init(_ headers: HTTPHeaders, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        var block: [UInt8] = Array("GET / HTTP/1.1\r\n".utf8)
        for (name, value) in headers {
            block.append(contentsOf: name.utf8)
            block.append(contentsOf: ": ".utf8)
            block.append(contentsOf: value.utf8)
            block.append(contentsOf: "\r\n".utf8)
        }
        block.append(contentsOf: "\r\n".utf8)
        let scan = block.withUnsafeBytes { raw -> RequestHeadScan? in
            var head = HeadBlock(raw, hasStartLine: true)
            var framing = FramingFields(readsConnection: false)
            return try? RequestHeadScan(&head, framing: &framing, allocator: allocator)
        }
        self = scan ?? RequestHeadScan(empty: allocator)
    }

    private init(empty allocator: ByteBufferAllocator) {
        kept = allocator.buffer(capacity: 0)
    }

    /// The kept fields as (name, value) strings.
    var keptFields: [(String, String)] {
        var fields: [(String, String)] = []
        Self.forEachLine(kept) { bytes, name, value in fields.append((HTTPSyntax.string(bytes, name), HTTPSyntax.string(bytes, value))) }
        return fields
    }

    /// The custom tags' values for this request (literal, environment, or one of its headers);
    /// empty ones are left out.
    func customTagValues(_ tags: [CustomTag]) -> [(key: String, value: String)] {
        var values: [(key: String, value: String)] = []
        for tag in tags {
            let value: String?
            switch tag.source {
            case .literal(let v): value = v
            case .environment(_, let v): value = v
            case .header(let name): value = first(name)
            }
            if let value, !value.isEmpty { values.append((tag.name, value)) }
        }
        return values
    }

    /// The first value of a request header by name, as it came: kept fields from their bytes,
    /// the others from what the scan read. Hop-by-hop fields and meshtrace's loop marker have
    /// none (they are not the application's).
    func first(_ name: String) -> String? {
        switch Self.classify(name) {
        case .forward, .userAgent, .clientTraceID, .forceTrace, .expect, .contentLength:
            var found: String?
            let lower = name.lowercased()
            Self.forEachLine(kept) { bytes, field, value in
                if found == nil, field.count == lower.utf8.count, HTTPSyntax.string(bytes, field).equalsLowercaseASCII(lower) {
                    found = HTTPSyntax.string(bytes, value)
                }
            }
            return found
        case .host: return host
        case .requestID: return requestID
        case .downstreamCluster: return downstreamCluster
        case .trace(let slot): return trace.first(slot.name)
        case .connection, .transferEncoding, .hopByHop, .upgrade, .loopMarker: return nil
        }
    }

    private mutating func dropListed(_ listed: [Substring], allocator: ByteBufferAllocator) {
        let names = Set(listed.map { $0.lowercased() })
        if names.contains("host") { hostListedInConnection = true }
        var remaining = allocator.buffer(capacity: kept.readableBytes)
        var lengthKept = false
        Self.forEachLine(kept) { bytes, name, value in
            let lower = HTTPSyntax.string(bytes, name).lowercased()
            guard !names.contains(lower) else { return }
            if lower == "content-length" { lengthKept = true }
            remaining.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[name.lowerBound..<(value.upperBound + 2)]))
        }
        kept = remaining
        if !lengthKept { contentLength = nil }
    }

    /// Each `Name: value` CRLF line of `fields`, as ranges into its bytes.
    private static func forEachLine(_ fields: ByteBuffer, _ body: (UnsafeRawBufferPointer, Range<Int>, Range<Int>) -> Void) {
        fields.withUnsafeReadableBytes { bytes in
            var start = 0
            while start < bytes.count, let colon = HTTPSyntax.index(of: UInt8(ascii: ":"), in: bytes, from: start),
                  let cr = HTTPSyntax.index(of: UInt8(ascii: "\r"), in: bytes, from: colon) {
                body(bytes, start..<colon, (colon + 2)..<cr)
                start = cr + 2
            }
        }
    }

    /// Notes one field the proxy acts on; true when it is forwarded as it came.
    private mutating func note(_ kind: Kind, _ bytes: UnsafeRawBufferPointer, _ range: Range<Int>, listed: inout [Substring]) -> Bool {
        let value = { HTTPSyntax.string(bytes, range) }
        switch kind {
        case .forward:
            return true
        case .host:
            counts.hosts += 1
            if host == nil { host = value() }
            return false
        case .userAgent:
            if userAgent == nil { userAgent = value() }
            return true
        case .clientTraceID:
            if clientTraceID == nil { clientTraceID = value() }
            return true
        case .forceTrace:
            forceTrace = true
            return true
        case .expect:
            if value().trimmingSpaces.lowercased() == "100-continue" {
                expectsContinue = true
                return false
            }
            return true
        case .contentLength:
            let v = value()
            counts.contentLengths += 1
            counts.contentLength = v
            if contentLength == nil { contentLength = v }
            return true
        case .connection:
            for token in value().split(separator: ",") {
                let t = token.trimmingSpaces
                if t.equalsLowercaseASCII("close") {
                    connectionClose = true
                } else if t.equalsLowercaseASCII("keep-alive") {
                    connectionKeepAlive = true
                } else if t.equalsLowercaseASCII("upgrade") {
                    connectionUpgrade = true
                } else if !t.isEmpty {
                    listed.append(t)
                }
            }
            return false
        case .transferEncoding:
            let v = value()
            counts.transferEncodings += 1
            counts.transferEncoding = v
            if v.lowercased().contains("chunked") { chunked = true }
            return false
        case .hopByHop:
            return false
        case .upgrade:
            if upgrade == nil { upgrade = value() }
            return false
        case .requestID:
            if requestID == nil { requestID = value() }
            return false
        case .downstreamCluster:
            if downstreamCluster == nil { downstreamCluster = value() }
            return false
        case .loopMarker:
            loopMarked = true
            return false
        case .trace(let slot):
            trace.set(slot, value())
            return false
        }
    }

    enum Kind: Equatable {
        case forward, host, userAgent, clientTraceID, forceTrace, expect, contentLength
        case connection, transferEncoding, hopByHop, upgrade
        case requestID, downstreamCluster, loopMarker
        case trace(TraceHeaders.Slot)
    }

    static func classify(_ name: String) -> Kind {
        var name = name
        return name.withUTF8 { classify(UnsafeRawBufferPointer($0), 0..<$0.count) }
    }

    /// By length first, so most names are settled with one or two comparisons.
    static func classify(_ bytes: UnsafeRawBufferPointer, _ name: Range<Int>) -> Kind {
        let eq = { (lower: StaticString) in FieldName.equals(bytes, name, lower) }
        switch name.count {
        case 2:
            if eq("te") { return .hopByHop }
            if eq("b3") { return .trace(.b3) }
        case 3:
            if eq("sw8") { return .trace(.sw8) }
        case 4:
            if eq("host") { return .host }
        case 6:
            if eq("expect") { return .expect }
        case 7:
            if eq("trailer") { return .hopByHop }
            if eq("upgrade") { return .upgrade }
        case 10:
            if eq("user-agent") { return .userAgent }
            if eq("connection") { return .connection }
            if eq("keep-alive") { return .hopByHop }
            if eq("tracestate") { return .trace(.tracestate) }
            if eq("x-b3-flags") { return .trace(.b3Flags) }
        case 11:
            if eq("traceparent") { return .trace(.traceparent) }
            if eq("x-b3-spanid") { return .trace(.b3SpanID) }
        case 12:
            if eq("x-request-id") { return .requestID }
            if eq("x-b3-traceid") { return .trace(.b3TraceID) }
            if eq("x-b3-sampled") { return .trace(.b3Sampled) }
        case 14:
            if eq("content-length") { return .contentLength }
        case 15:
            if eq("x-meshtrace-via") { return .loopMarker }
        case 16:
            if eq("proxy-connection") { return .hopByHop }
        case 17:
            if eq("transfer-encoding") { return .transferEncoding }
            if eq("x-b3-parentspanid") { return .trace(.b3ParentSpanID) }
            if eq("x-client-trace-id") { return .clientTraceID }
        case 18:
            if eq("proxy-authenticate") { return .hopByHop }
        case 19:
            if eq("proxy-authorization") { return .hopByHop }
            if eq("x-envoy-force-trace") { return .forceTrace }
        case 34:
            if eq("x-envoy-downstream-service-cluster") { return .downstreamCluster }
        default:
            break
        }
        return .forward
    }
}

/// The incoming trace headers (first value of each), as a `HeaderCarrier` for extraction.
struct TraceHeaders: HeaderCarrier {
    enum Slot: CaseIterable {
        case traceparent, tracestate, b3, b3TraceID, b3SpanID, b3ParentSpanID, b3Sampled, b3Flags, sw8

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
            case .sw8: return Sw8Propagation.header
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

    // Nine fields rather than an array: no allocation per request.
    private var traceparent, tracestate, b3, b3TraceID, b3SpanID, b3ParentSpanID, b3Sampled, b3Flags, sw8: String?

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
        case .sw8: return sw8
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
        case .sw8: sw8 = value
        }
    }

    /// No trace header arrived (an edge request, or an app that forwards nothing).
    var isEmpty: Bool {
        traceparent == nil && tracestate == nil && b3 == nil && b3TraceID == nil && b3SpanID == nil && b3ParentSpanID == nil
            && b3Sampled == nil && b3Flags == nil && sw8 == nil
    }

    /// B3 keeps the first value, as `HTTPHeaders.first(name:)` would have returned. W3C's two
    /// fields keep every line, combined with commas as HTTP combines repeated fields: several
    /// `tracestate` lines are one list, and two `traceparent` lines are not a traceparent (the
    /// trace restarts), as Trace Context §3.3.1.1 and the test suite's duplicate case require.
    mutating func set(_ slot: Slot, _ value: String) {
        guard let existing = self.value(slot) else {
            store(slot, value)
            return
        }
        if slot == .traceparent || slot == .tracestate { store(slot, existing + "," + value) }
    }

    /// For W3C's fields, every line combined (see `set`).
    func first(_ name: String) -> String? {
        Slot(name: name).flatMap { value($0) }
    }

    func combined(_ name: String) -> String? {
        first(name)
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
