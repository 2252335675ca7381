import Synchronization

/// What keeps one workload's span names few when no template covers a path: it learns which
/// path positions take many values, and caps the number of distinct names.
///
/// - Learning, as Datadog's and Tempo's URL-path normalisers do: a segment with a digit after a
///   letter (`r50`, `ord-7f3a`, `user_42`) is an id once more than `learnAfter` distinct such
///   segments have followed the same route prefix. `/api/v1` and `/api/v2` stay apart (two
///   values); `/api/reports/r0 … r552` become `/api/reports/{id}` after the first few.
/// - The cap: past `maxNames` distinct `METHOD route` names, a new name folds into
///   `METHOD /<first segment>/*` and is counted (`folded`), so an unbounded id space cannot
///   fill the operations list and split the service graph's edges.
///
/// Span names are built on the export thread (sampled spans only), so the lock is not
/// contended by the proxy's event loops.
public final class RouteCardinality: Sendable {
    public let maxNames: Int
    public let learnAfter: Int
    /// Route prefixes tracked for learning; past it nothing new is learned (memory bound).
    let maxPrefixes: Int

    struct State {
        /// route prefix -> distinct id-like segments seen after it (up to `learnAfter + 1`).
        var candidates: [String: Set<String>] = [:]
        /// Prefixes whose next segment is an id when it has a digit after a letter.
        var variable: Set<String> = []
        /// Hashes of the `METHOD route` names given out: a lookup builds no string.
        var names: Set<Int> = []
        var folded = 0
    }
    private let state = Mutex(State())

    public init(maxNames: Int = 500, learnAfter: Int = 10, maxPrefixes: Int = 2000) {
        self.maxNames = maxNames
        self.learnAfter = learnAfter
        self.maxPrefixes = maxPrefixes
    }

    public struct Snapshot: Sendable, Equatable {
        public var names: Int
        public var folded: Int
        /// Learned templates, e.g. `/api/reports/{id}`.
        public var learned: [String]
    }

    public var snapshot: Snapshot {
        state.withLock { Snapshot(names: $0.names.count, folded: $0.folded, learned: $0.variable.map { $0 + "/{id}" }.sorted()) }
    }

    /// `route` (already templated by the fixed heuristic) with learned ids replaced and the
    /// cap applied to `method route`; nil when `route` stands as it is (the common case,
    /// which builds no string).
    func rewrite(method: String, route: Substring) -> String? {
        let candidate = Self.hasDigitAfterLetterInASegment(route)
        return state.withLock { s -> String? in
            let learned = candidate ? learn(route, &s) : nil
            let final = learned.map { $0[...] } ?? route
            var hasher = Hasher()
            hasher.combine(method)
            hasher.combine(final)
            let key = hasher.finalize()
            if s.names.contains(key) { return learned }
            if s.names.count < maxNames {
                s.names.insert(key)
                return learned
            }
            s.folded += 1
            return Self.folded(final)
        }
    }

    /// `/api/reports/9` -> `/api/*`; `/x` -> `/*`.
    static func folded(_ route: Substring) -> String {
        let parts = route.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: true)
        return parts.count > 1 ? "/\(parts[0])/*" : "/*"
    }

    /// The route with learned id positions as `{id}`, or nil when nothing changed.
    private func learn(_ route: Substring, _ s: inout State) -> String? {
        var out = ""
        var changed = false
        for part in route.split(separator: "/", omittingEmptySubsequences: false).dropFirst() {
            let prefix = out
            if Self.hasDigitAfterLetter(part) {
                if s.variable.contains(prefix) {
                    out += "/{id}"
                    changed = true
                    continue
                }
                if s.candidates[prefix] != nil || s.candidates.count < maxPrefixes {
                    let seen = s.candidates[prefix, default: []]
                    if seen.count <= learnAfter {
                        s.candidates[prefix, default: []].insert(String(part))
                    }
                    if s.candidates[prefix, default: []].count > learnAfter {
                        s.variable.insert(prefix)
                        s.candidates[prefix] = nil
                        out += "/{id}"
                        changed = true
                        continue
                    }
                }
            }
            out += "/" + part
        }
        return changed ? out : nil
    }

    /// `hasDigitAfterLetter` for any segment of `route`, in one pass over its bytes (no array
    /// of segments: this runs for every span).
    static func hasDigitAfterLetterInASegment(_ route: Substring) -> Bool {
        var sawLetter = false
        for c in route.utf8 {
            switch c {
            case UInt8(ascii: "/"): sawLetter = false
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): sawLetter = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"): if sawLetter { return true }
            default: break
            }
        }
        return false
    }

    /// `r50`, `ord-7f3a`, `user_42`, `v2`: a letter, then later a digit.
    static func hasDigitAfterLetter(_ segment: Substring) -> Bool {
        var sawLetter = false
        for c in segment.utf8 {
            switch c {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"): sawLetter = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"): if sawLetter { return true }
            default: break
            }
        }
        return false
    }
}
