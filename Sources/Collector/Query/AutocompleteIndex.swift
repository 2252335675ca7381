import Synchronization
import TraceModel
import TraceStorage

/// The values seen for the configured autocomplete keys (`--autocomplete-keys`, Zipkin's
/// AUTOCOMPLETE_KEYS), for `/api/v2/autocompleteKeys` and `/api/v2/autocompleteValues`.
///
/// As in Zipkin, values are recorded at ingest, after the spans are committed. On start the
/// index also reads back the last day of stored spans (up to `seedSpans`), so a restart does
/// not empty the drop-downs. Each key keeps at most `maxValuesPerKey` values: the keys are
/// meant to be low-cardinality (environment, region), and a mistaken high-cardinality key
/// must not grow without bound.
final class AutocompleteIndex: Sendable {
    let keys: [String]
    private let keySet: Set<String>
    private let values: Mutex<[String: Set<String>]>
    private let seeded = Mutex(false)
    static let maxValuesPerKey = 1_000
    static let seedSpans = 50_000

    init(keys: [String]) {
        var unique: [String] = []
        for key in keys where !unique.contains(key) { unique.append(key) }
        self.keys = unique
        self.keySet = Set(unique)
        self.values = Mutex(Dictionary(uniqueKeysWithValues: unique.map { ($0, []) }))
    }

    func record(_ spans: [Span]) {
        guard !keySet.isEmpty else { return }
        var found: [(String, String)] = []
        for span in spans {
            // What the Zipkin API shows as tags: the span's attributes.
            for attribute in span.attributes where keySet.contains(attribute.key) {
                found.append((attribute.key, attribute.value.description))
            }
        }
        guard !found.isEmpty else { return }
        values.withLock { table in
            for (key, value) in found where table[key, default: []].count < Self.maxValuesPerKey {
                table[key, default: []].insert(value)
            }
        }
    }

    /// Sorted values for `key`; empty for a key that is not configured, as Zipkin answers.
    func values(for key: String, store: any TraceStore) async throws -> [String] {
        guard keySet.contains(key) else { return [] }
        try await seedIfNeeded(store)
        return values.withLock { Array($0[key] ?? []) }.sorted()
    }

    private func seedIfNeeded(_ store: any TraceStore) async throws {
        guard seeded.withLock({ done in defer { done = true }; return !done }) else { return }
        let now = WallClock.nowNanos()
        let dayAgo = now > 86_400_000_000_000 ? now - 86_400_000_000_000 : 0
        record(try await store.spans(startNanos: dayAgo, endNanos: now, limit: Self.seedSpans))
    }
}
