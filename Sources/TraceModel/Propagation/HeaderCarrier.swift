/// The few header operations propagation needs, so the model stays free of NIO and HTTP types.
/// Names are compared case-insensitively; implementations adapt NIO's `HTTPHeaders`,
/// swift-http-types' `HTTPFields` or a plain dictionary.
public protocol HeaderCarrier {
    /// The first value of the header, if present.
    func first(_ name: String) -> String?
    /// Every field line of the header joined with commas, in order, as HTTP combines repeated
    /// fields (RFC 9110 §5.3): W3C's `tracestate` may come as several lines, and two
    /// `traceparent` lines combine into a value that is not a traceparent. Carriers that keep
    /// one value per name can rely on the default, `first`.
    func combined(_ name: String) -> String?
    mutating func replace(_ name: String, with value: String)
    mutating func remove(_ name: String)
}

extension HeaderCarrier {
    public func combined(_ name: String) -> String? { first(name) }
}

/// A simple carrier for tests and for code that builds header lists itself.
public struct HeaderList: HeaderCarrier, Hashable, Sendable {
    public var fields: [(name: String, value: String)] {
        get { storage.map { ($0.name, $0.value) } }
        set { storage = newValue.map { Field(name: $0.name, value: $0.value) } }
    }

    private struct Field: Hashable, Sendable {
        var name: String
        var value: String
    }

    private var storage: [Field]

    public init(_ fields: [(String, String)] = []) {
        storage = fields.map { Field(name: $0.0, value: $0.1) }
    }

    public func first(_ name: String) -> String? {
        storage.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public func combined(_ name: String) -> String? {
        let values = storage.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        return values.isEmpty ? nil : values.joined(separator: ",")
    }

    public mutating func replace(_ name: String, with value: String) {
        remove(name)
        storage.append(Field(name: name, value: value))
    }

    public mutating func remove(_ name: String) {
        storage.removeAll { $0.name.lowercased() == name.lowercased() }
    }
}
