/// `METHOD /route` span names. A path a declared template fits (`RouteTemplates`) takes its
/// name; otherwise segments that look like ids (numbers, UUIDs, long hex, long opaque tokens)
/// become `{id}`, so `/users/42/orders/7` and `/users/9/orders/1` share one name, and
/// `RouteCardinality` learns the ids this cannot tell from words and caps the distinct names.
/// Istio's `host:port/*` names tell users nothing.
public struct SpanNaming: Sendable, Hashable {
    /// When false, names keep the raw path (still without the query string).
    public var templatePaths: Bool
    /// Declared routes (`--route-template`, mesh.yaml `routes:`), tried first.
    public var templates: RouteTemplates
    /// Shared by every copy of this naming (one per workload); nil turns learning and the cap off.
    public var cardinality: RouteCardinality?

    public init(templatePaths: Bool = true, templates: RouteTemplates = RouteTemplates(), cardinality: RouteCardinality? = RouteCardinality()) {
        self.templatePaths = templatePaths
        self.templates = templates
        self.cardinality = cardinality
    }

    public static func == (a: SpanNaming, b: SpanNaming) -> Bool {
        a.templatePaths == b.templatePaths && a.templates == b.templates && a.cardinality.map(ObjectIdentifier.init) == b.cardinality.map(ObjectIdentifier.init)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(templatePaths)
        hasher.combine(templates)
        hasher.combine(cardinality.map(ObjectIdentifier.init))
    }

    public func name(method: String, path: String) -> String {
        method + " " + route(path, method: method)
    }

    /// The span's route for a request: a declared template, else the id heuristic, then (given
    /// the method) what `cardinality` learned and its cap.
    public func route(_ path: String, method: String) -> String {
        withRoute(path, method: method) { String($0) }
    }

    /// `route(path, method:)` lent to `body`: the path's own bytes when nothing changes it (the
    /// common case, with no String built). For span writers.
    public func withRoute<R>(_ path: String, method: String, _ body: (Substring) -> R) -> R {
        if templatePaths, !templates.isEmpty, let declared = templates.match(Self.pathOnly(path)) { return body(declared[...]) }
        let plain = untemplatedRoute(path)
        guard templatePaths, let cardinality else { return body(plain ?? route(path)[...]) }
        if let plain {
            return cardinality.rewrite(method: method, route: plain).map { body($0[...]) } ?? body(plain)
        }
        let templated = route(path)
        return body((cardinality.rewrite(method: method, route: templated[...]) ?? templated)[...])
    }

    static func pathOnly(_ path: String) -> Substring {
        let utf8 = path.utf8
        let end = utf8.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? utf8.endIndex
        return end == utf8.startIndex ? "/" : path[..<end]
    }

    /// The id heuristic alone: no declared templates, nothing learned.
    public func route(_ path: String) -> String {
        if let plain = untemplatedRoute(path) { return String(plain) }
        let utf8 = path.utf8
        let end = utf8.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? utf8.endIndex
        var out = ""
        out.reserveCapacity(utf8.distance(from: utf8.startIndex, to: end))
        var start = utf8.startIndex
        var i = start
        while i <= end {
            if i == end || utf8[i] == UInt8(ascii: "/") {
                if start > utf8.startIndex { out += "/" }
                out += Self.looksLikeID(path[start..<i]) ? "{id}" : path[start..<i]
                if i == end { break }
                start = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        return out
    }

    /// The route when no segment needs `{id}`: a slice of `path` (the common case), so the
    /// sidecar's span writer copies it without building a string. nil when templating applies.
    public func untemplatedRoute(_ path: String) -> Substring? {
        // Over bytes: '?', '#' and '/' are ASCII, so byte positions are character boundaries, and
        // a Character-based split would run grapheme breaking on every request.
        let utf8 = path.utf8
        let end = utf8.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? utf8.endIndex
        if end == utf8.startIndex { return "/" }
        let p = path[..<end]
        guard templatePaths else { return p }
        var start = utf8.startIndex
        var i = start
        while i < end {
            if utf8[i] == UInt8(ascii: "/") {
                if Self.looksLikeID(path[start..<i]) { return nil }
                start = utf8.index(after: i)
            }
            i = utf8.index(after: i)
        }
        return Self.looksLikeID(path[start..<end]) ? nil : p
    }

    static func looksLikeID(_ segment: Substring) -> Bool {
        let utf8 = segment.utf8
        guard !utf8.isEmpty else { return false }
        var digits = 0, hex = 0, dashes = 0, letters = 0
        for c in utf8 {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digits += 1; hex += 1
            case UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "A")...UInt8(ascii: "F"): hex += 1; letters += 1
            case UInt8(ascii: "-"): dashes += 1
            case UInt8(ascii: "g")...UInt8(ascii: "z"), UInt8(ascii: "G")...UInt8(ascii: "Z"): letters += 1
            case UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"), UInt8(ascii: "%"), UInt8(ascii: "="): break
            default: return false
            }
        }
        let n = utf8.count
        if digits == n { return true }  // 42, 2024
        if n == 36 && dashes == 4 && hex == 32 { return true }  // UUID
        if n >= 16 && hex == n { return true }  // long hex: object ids, hashes
        // Long opaque tokens mixing letters and digits (base64 ids, ULIDs), but not words.
        if n >= 20 && digits >= 4 && letters > 0 { return true }
        return false
    }
}
