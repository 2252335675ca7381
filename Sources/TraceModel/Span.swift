/// The collector's one span model. Every wire format decodes into it and encodes from it,
/// so it carries the union of what Zipkin v2 and OTLP can say about a span.
public struct Span: Hashable, Sendable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var parentSpanID: SpanID?
    public var kind: SpanKind
    /// Kept exactly as sent (case included): Jaeger and OTLP names are case-sensitive.
    public var name: String
    /// Epoch nanoseconds.
    public var startTimeNanos: UInt64
    public var durationNanos: UInt64
    /// `service.name` of the resource, or Zipkin's `localEndpoint.serviceName`.
    public var serviceName: String
    /// Resource attributes other than `service.name`.
    public var resource: [Attribute]
    public var attributes: [Attribute]
    public var events: [SpanEvent]
    public var links: [SpanLink]
    public var status: SpanStatus
    public var localEndpoint: Endpoint?
    public var remoteEndpoint: Endpoint?
    /// W3C tracestate as received.
    public var traceState: String?
    public var scope: InstrumentationScope?
    /// Zipkin `debug` / B3 `X-B3-Flags: 1`.
    public var debug: Bool
    /// Zipkin `shared`: a server span that reuses the client's span id.
    public var shared: Bool

    public init(
        traceID: TraceID,
        spanID: SpanID,
        parentSpanID: SpanID? = nil,
        kind: SpanKind = .internal,
        name: String,
        startTimeNanos: UInt64,
        durationNanos: UInt64,
        serviceName: String,
        resource: [Attribute] = [],
        attributes: [Attribute] = [],
        events: [SpanEvent] = [],
        links: [SpanLink] = [],
        status: SpanStatus = .unset,
        localEndpoint: Endpoint? = nil,
        remoteEndpoint: Endpoint? = nil,
        traceState: String? = nil,
        scope: InstrumentationScope? = nil,
        debug: Bool = false,
        shared: Bool = false
    ) {
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.kind = kind
        self.name = name
        self.startTimeNanos = startTimeNanos
        self.durationNanos = durationNanos
        self.serviceName = serviceName
        self.resource = resource
        self.attributes = attributes
        self.events = events
        self.links = links
        self.status = status
        self.localEndpoint = localEndpoint
        self.remoteEndpoint = remoteEndpoint
        self.traceState = traceState
        self.scope = scope
        self.debug = debug
        self.shared = shared
    }

    public var endTimeNanos: UInt64 { startTimeNanos &+ durationNanos }

    /// True for error status, or a Zipkin-style `error` tag.
    public var isError: Bool {
        if status.code == .error { return true }
        return attributes.contains { $0.key == "error" && $0.value != .bool(false) && $0.value != .string("false") }
    }

    public func attribute(_ key: String) -> AttributeValue? {
        // Lengths first: a native string knows its UTF-8 count, and a full comparison is a call
        // into the runtime for each of a sidecar span's ~30 attributes.
        let count = key.utf8.count
        return attributes.first { $0.key.utf8.count == count && $0.key == key }?.value
    }
}

/// OTLP's span kinds. Zipkin has no INTERNAL: a Zipkin span without `kind` maps here.
public enum SpanKind: UInt8, Hashable, Sendable, CaseIterable {
    case unspecified = 0
    case `internal` = 1
    case server = 2
    case client = 3
    case producer = 4
    case consumer = 5

    /// Lower-case name as Jaeger's `span.kind` tag and `spanKind` parameter use it.
    public var jaegerName: String {
        switch self {
        case .unspecified: return "unspecified"
        case .internal: return "internal"
        case .server: return "server"
        case .client: return "client"
        case .producer: return "producer"
        case .consumer: return "consumer"
        }
    }

    /// Zipkin's upper-case kind, or nil where Zipkin leaves `kind` out.
    public var zipkinName: String? {
        switch self {
        case .server: return "SERVER"
        case .client: return "CLIENT"
        case .producer: return "PRODUCER"
        case .consumer: return "CONSUMER"
        case .unspecified, .internal: return nil
        }
    }

    public init?(jaegerName: String) {
        guard let kind = SpanKind.allCases.first(where: { $0.jaegerName == jaegerName.lowercased() }) else { return nil }
        self = kind
    }
}

public struct Attribute: Hashable, Sendable {
    public var key: String
    public var value: AttributeValue

    public init(_ key: String, _ value: AttributeValue) {
        self.key = key
        self.value = value
    }
}

// Not `indirect`: every case already fits in two words (arrays are references), and an
// indirect enum boxes each value on the heap, one allocation per tag on the sidecar's span path.
public enum AttributeValue: Hashable, Sendable, CustomStringConvertible {
    case string(String)
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case bytes([UInt8])
    case array([AttributeValue])

    /// How formats with string-only tags (Zipkin, tag search) see the value.
    public var description: String {
        switch self {
        case .string(let s): return s
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return Self.format(d)
        case .bytes(let b): return Base64.encode(b)
        case .array(let values): return "[" + values.map { $0.jsonFragment }.joined(separator: ",") + "]"
        }
    }

    private static func format(_ d: Double) -> String {
        if d.isFinite, d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return String(d)
    }

    /// The value as a JSON literal, for arrays rendered into a string tag.
    public var jsonFragment: String {
        switch self {
        case .string(let s): return JSONText.quote(s)
        case .bool, .int: return description
        case .double(let d): return d.isFinite ? description : JSONText.quote(String(d))
        case .bytes: return JSONText.quote(description)
        case .array: return description
        }
    }
}

public struct SpanEvent: Hashable, Sendable {
    public var timeNanos: UInt64
    public var name: String
    public var attributes: [Attribute]

    public init(timeNanos: UInt64, name: String, attributes: [Attribute] = []) {
        self.timeNanos = timeNanos
        self.name = name
        self.attributes = attributes
    }
}

public struct SpanLink: Hashable, Sendable {
    public var traceID: TraceID
    public var spanID: SpanID
    public var traceState: String?
    public var attributes: [Attribute]

    public init(traceID: TraceID, spanID: SpanID, traceState: String? = nil, attributes: [Attribute] = []) {
        self.traceID = traceID
        self.spanID = spanID
        self.traceState = traceState
        self.attributes = attributes
    }
}

public struct SpanStatus: Hashable, Sendable {
    public enum Code: UInt8, Hashable, Sendable {
        case unset = 0
        case ok = 1
        case error = 2
    }

    public var code: Code
    public var message: String?

    public init(code: Code, message: String? = nil) {
        self.code = code
        self.message = message
    }

    public static let unset = SpanStatus(code: .unset)
    public static let ok = SpanStatus(code: .ok)
    public static func error(_ message: String? = nil) -> SpanStatus { SpanStatus(code: .error, message: message) }
}

/// Zipkin's endpoint: who is on the other end of an RPC (remote) or which process reported (local).
public struct Endpoint: Hashable, Sendable {
    public var serviceName: String?
    public var ipv4: String?
    public var ipv6: String?
    public var port: Int?

    public init(serviceName: String? = nil, ipv4: String? = nil, ipv6: String? = nil, port: Int? = nil) {
        self.serviceName = serviceName
        self.ipv4 = ipv4
        self.ipv6 = ipv6
        self.port = port
    }

    public var isEmpty: Bool { serviceName == nil && ipv4 == nil && ipv6 == nil && port == nil }
}

public struct InstrumentationScope: Hashable, Sendable {
    public var name: String
    public var version: String?

    public init(name: String, version: String? = nil) {
        self.name = name
        self.version = version
    }
}
