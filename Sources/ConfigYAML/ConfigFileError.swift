/// A problem in a configuration file (mesh.yaml, the tail-sampling policy file), pointing at the
/// line and field, with a hint toward the fix.
public struct ConfigFileError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var column: Int?
    /// Dotted path to the field, e.g. `services[1].port` or `policies[2].latency.threshold_ms`.
    public var field: String
    public var message: String
    public var hint: String?

    public init(file: String, line: Int?, column: Int?, field: String, message: String, hint: String?) {
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        self.message = message
        self.hint = hint
    }

    public var description: String {
        var location = file
        if let line { location += ":\(line)" + (column.map { ":\($0)" } ?? "") }
        var text = "\(location): \(field.isEmpty ? "" : field + ": ")\(message)"
        if let hint { text += "\n  hint: \(hint)" }
        return text
    }
}
