/// Routes a person declares, as Envoy route names and OpenTelemetry's `http.route` carry them:
/// `/api/reports/{id}` names every `/api/reports/<anything>` request, whatever the id looks
/// like (`r50`, `ord-7f3a`), where the built-in id heuristic cannot tell an id from a word.
/// A `{name}` stands for exactly one path segment; the rest are literal.
public struct RouteTemplate: Sendable, Hashable, CustomStringConvertible {
    enum Segment: Sendable, Hashable {
        case literal(String)
        case parameter
    }

    public let description: String
    let segments: [Segment]
    /// Literal segments count: when several templates match, the one with more wins
    /// (`/users/me` before `/users/{id}`).
    let literals: Int

    public init(_ text: String) throws(ConfigurationError) {
        guard text.hasPrefix("/") else {
            throw ConfigurationError("route template '\(text)' must start with '/', e.g. /api/reports/{id}")
        }
        var segments: [Segment] = []
        for part in text.dropFirst().split(separator: "/", omittingEmptySubsequences: false) {
            if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                segments.append(.parameter)
            } else if part.contains("{") || part.contains("}") || part.contains("?") || part.contains("*") {
                throw ConfigurationError("route template '\(text)': '\(part)' must be a literal segment or a whole {name}")
            } else {
                segments.append(.literal(String(part)))
            }
        }
        self.description = text
        self.segments = segments
        self.literals = segments.filter { if case .literal = $0 { true } else { false } }.count
    }

    /// True when `segments` (the path without its leading '/' and query) fits the template.
    func matches(_ path: [Substring]) -> Bool {
        guard path.count == segments.count else { return false }
        for (segment, part) in zip(segments, path) {
            switch segment {
            case .parameter: if part.isEmpty { return false }
            case .literal(let text): if part != text { return false }
            }
        }
        return true
    }
}

/// The declared templates of one workload, most specific first.
public struct RouteTemplates: Sendable, Hashable {
    public let templates: [RouteTemplate]

    public init(_ templates: [RouteTemplate] = []) {
        self.templates = templates.sorted { $0.literals > $1.literals }
    }

    public init(parsing texts: [String]) throws(ConfigurationError) {
        var parsed: [RouteTemplate] = []
        for text in texts { parsed.append(try RouteTemplate(text)) }
        self.init(parsed)
    }

    public var isEmpty: Bool { templates.isEmpty }

    /// The template `path` (query and fragment cut off by the caller) fits, if any.
    public func match(_ path: Substring) -> String? {
        guard !templates.isEmpty, path.first == "/" else { return nil }  // not a CONNECT target
        let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        return templates.first { $0.matches(parts) }?.description
    }
}
