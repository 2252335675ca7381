import TraceModel

/// A body that could not be decoded (or was too large). `message` names the offending field or span,
/// e.g. `spans[3].traceId: must be 16 or 32 hex characters, got "xyz"`.
public struct WireError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Bad data: map to 400 / INVALID_ARGUMENT.
        case malformed
        /// Over a size limit (e.g. gzip output cap): map to 413 / RESOURCE_EXHAUSTED.
        case tooLarge
    }

    public var message: String
    public var kind: Kind

    public init(_ message: String, kind: Kind = .malformed) {
        self.message = message
        self.kind = kind
    }

    public var description: String { message }

    /// The same error with `prefix: ` in front of the message.
    func prefixed(_ prefix: String) -> WireError {
        WireError(prefix + ": " + message, kind: kind)
    }
}

/// One span the decoder dropped (OTLP partial success). The rest of the request is kept.
public struct SpanRejection: Sendable, Equatable, CustomStringConvertible {
    /// e.g. `resourceSpans[0].scopeSpans[1].spans[4]`
    public var location: String
    public var reason: String

    public init(location: String, reason: String) {
        self.location = location
        self.reason = reason
    }

    public var description: String { location + ": " + reason }
}

public struct DecodedBatch: Sendable {
    public var spans: [Span]
    public var rejected: [SpanRejection]
    /// How many string attribute values were cut to `WireLimits.maxAttributeValueBytes`.
    public var truncatedValues: Int

    public init(spans: [Span] = [], rejected: [SpanRejection] = [], truncatedValues: Int = 0) {
        self.spans = spans
        self.rejected = rejected
        self.truncatedValues = truncatedValues
    }
}

public struct WireLimits: Sendable {
    /// String attribute values longer than this (in UTF-8 bytes) are truncated at a character boundary.
    public var maxAttributeValueBytes: Int
    /// JSON bodies nested deeper than this are rejected.
    public var maxJSONDepth: Int

    public init(maxAttributeValueBytes: Int = 16_384, maxJSONDepth: Int = 64) {
        self.maxAttributeValueBytes = maxAttributeValueBytes
        self.maxJSONDepth = maxJSONDepth
    }

    public static let `default` = WireLimits()
}

/// Applies `maxAttributeValueBytes` and counts what it cut.
package struct ValueLimiter {
    package let maxBytes: Int
    package var truncated = 0

    package init(_ limits: WireLimits) { maxBytes = max(0, limits.maxAttributeValueBytes) }

    package mutating func limit(_ s: String) -> String {
        guard s.utf8.count > maxBytes else { return s }
        truncated += 1
        return Self.truncate(s, toUTF8Bytes: maxBytes)
    }

    package mutating func limit(_ v: AttributeValue) -> AttributeValue {
        switch v {
        case .string(let s): return .string(limit(s))
        case .array(let values):
            let changed = values.contains {
                switch $0 {
                case .string(let s): return s.utf8.count > maxBytes
                case .array: return true
                default: return false
                }
            }
            guard changed else { return v }
            return .array(values.map { limit($0) })
        default: return v
        }
    }

    /// Cuts `s` to at most `n` UTF-8 bytes without splitting a scalar.
    static func truncate(_ s: String, toUTF8Bytes n: Int) -> String {
        let utf8 = s.utf8
        guard utf8.count > n else { return s }
        var end = utf8.index(utf8.startIndex, offsetBy: n)
        // Back off continuation bytes (10xxxxxx) so the cut lands on a scalar boundary.
        while end > utf8.startIndex, (utf8[end] & 0xC0) == 0x80 { end = utf8.index(before: end) }
        return String(decoding: utf8[utf8.startIndex..<end], as: UTF8.self)
    }
}

/// Short, quoted rendering of a bad input value for error messages.
func quotedForError(_ s: String) -> String {
    let cut = s.utf8.count > 64 ? ValueLimiter.truncate(s, toUTF8Bytes: 64) + "…" : s
    return JSONText.quote(cut)
}

func quotedForError(_ bytes: ArraySlice<UInt8>) -> String {
    quotedForError(String(decoding: bytes, as: UTF8.self))
}

package enum Micros {
    /// Microseconds to nanoseconds, nil on overflow.
    package static func toNanos(_ micros: UInt64) -> UInt64? {
        let (v, o) = micros.multipliedReportingOverflow(by: 1000)
        return o ? nil : v
    }

    package static func floor(_ nanos: UInt64) -> UInt64 { nanos / 1000 }

    /// Rounded up, so any non-zero duration is at least 1 µs.
    package static func ceil(_ nanos: UInt64) -> UInt64 { nanos / 1000 + (nanos % 1000 == 0 ? 0 : 1) }
}
