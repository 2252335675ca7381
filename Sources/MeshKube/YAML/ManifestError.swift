/// A manifest that cannot be read or injected: which document (1-based, in file order), the
/// line it starts on when known, the field (`spec.template.spec.containers[0].name`) and why.
public struct ManifestError: Error, CustomStringConvertible, Sendable, Equatable {
    public var document: Int
    public var line: Int?
    public var field: String
    public var message: String

    public init(document: Int, line: Int? = nil, field: String, message: String) {
        self.document = document
        self.line = line
        self.field = field
        self.message = message
    }

    public var description: String {
        var text = "document \(document)"
        if let line { text += " (line \(line))" }
        if !field.isEmpty { text += ": \(field)" }
        return text + ": " + message
    }
}

/// A field-level failure inside one object; the document reader adds the document's place.
public struct FieldError: Error, Sendable {
    public var field: String
    public var message: String

    public init(_ field: String, _ message: String) {
        self.field = field
        self.message = message
    }
}
