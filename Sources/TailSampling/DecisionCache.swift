import TraceModel

/// A fixed-capacity least-recently-used map from trace id to a value, in flat arrays (no node
/// objects): a lookup that hits moves the entry to the front, an insert past capacity evicts the
/// back. Capacity 0 remembers nothing, as OpenTelemetry's `decision_cache` sizes of 0 do.
struct LRUCache<Value: Sendable>: Sendable {
    private struct Entry: Sendable {
        var key: TraceID
        var value: Value
        var previous: Int
        var next: Int
    }

    let capacity: Int
    private var index: [TraceID: Int] = [:]
    private var entries: [Entry] = []
    private var head = -1  // most recent
    private var tail = -1  // least recent

    init(capacity: Int) {
        self.capacity = max(0, capacity)
    }

    var count: Int { index.count }

    mutating func get(_ key: TraceID) -> Value? {
        guard let slot = index[key] else { return nil }
        moveToFront(slot)
        return entries[slot].value
    }

    func contains(_ key: TraceID) -> Bool { index[key] != nil }

    mutating func put(_ key: TraceID, _ value: Value) {
        guard capacity > 0 else { return }
        if let slot = index[key] {
            entries[slot].value = value
            moveToFront(slot)
            return
        }
        let slot: Int
        if entries.count < capacity {
            slot = entries.count
            entries.append(Entry(key: key, value: value, previous: -1, next: -1))
        } else {
            slot = tail
            unlink(slot)
            index.removeValue(forKey: entries[slot].key)
            entries[slot] = Entry(key: key, value: value, previous: -1, next: -1)
        }
        index[key] = slot
        linkAtFront(slot)
    }

    private mutating func moveToFront(_ slot: Int) {
        guard slot != head else { return }
        unlink(slot)
        linkAtFront(slot)
    }

    private mutating func unlink(_ slot: Int) {
        let (previous, next) = (entries[slot].previous, entries[slot].next)
        if previous >= 0 { entries[previous].next = next } else { head = next }
        if next >= 0 { entries[next].previous = previous } else { tail = previous }
        entries[slot].previous = -1
        entries[slot].next = -1
    }

    private mutating func linkAtFront(_ slot: Int) {
        entries[slot].previous = -1
        entries[slot].next = head
        if head >= 0 { entries[head].previous = slot }
        head = slot
        if tail < 0 { tail = slot }
    }
}

/// What is remembered of a decision once the trace's spans have left the buffer.
struct DecisionCache: Sendable {
    /// Kept traces, with the adjusted count their later spans carry too.
    var sampled: LRUCache<Double>
    var notSampled: LRUCache<Bool>

    init(sampledCapacity: Int, notSampledCapacity: Int) {
        sampled = LRUCache(capacity: sampledCapacity)
        notSampled = LRUCache(capacity: notSampledCapacity)
    }

    mutating func resize(sampledCapacity: Int, notSampledCapacity: Int) {
        guard sampledCapacity != sampled.capacity || notSampledCapacity != notSampled.capacity else { return }
        // Rare (a reload that changes a size): start over rather than carry a resize path.
        self = DecisionCache(sampledCapacity: sampledCapacity, notSampledCapacity: notSampledCapacity)
    }
}
