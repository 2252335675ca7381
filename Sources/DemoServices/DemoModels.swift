/// The JSON bodies the demo services exchange. Public so the runner and tests can decode them.

public struct DemoRecord: Codable, Sendable, Hashable {
    public var id: String
    public var item: String
    public var quantity: Int
    public var priceCents: Int

    public init(id: String, item: String, quantity: Int, priceCents: Int) {
        self.id = id
        self.item = item
        self.quantity = quantity
        self.priceCents = priceCents
    }
}

/// database: `GET /records?report=ID`.
public struct DatabaseRecords: Codable, Sendable, Hashable {
    public var report: String
    public var records: [DemoRecord]
    public var servedBy: String

    public init(report: String, records: [DemoRecord], servedBy: String) {
        self.report = report
        self.records = records
        self.servedBy = servedBy
    }
}

/// backend: `GET /reports/{id}`.
public struct BackendReport: Codable, Sendable, Hashable {
    public var report: String
    public var records: [DemoRecord]
    public var totalCents: Int
    public var checksum: String
    public var computedBy: String

    public init(report: String, records: [DemoRecord], totalCents: Int, checksum: String, computedBy: String) {
        self.report = report
        self.records = records
        self.totalCents = totalCents
        self.checksum = checksum
        self.computedBy = computedBy
    }
}

/// frontend: `GET /` and `GET /api/reports/{id}`.
public struct FrontendPage: Codable, Sendable, Hashable {
    public var page: String
    public var report: BackendReport
    public var servedBy: String

    public init(page: String, report: BackendReport, servedBy: String) {
        self.page = page
        self.report = report
        self.servedBy = servedBy
    }
}

/// Every error answer: what failed, where, and what the upstream said if it answered.
public struct DemoErrorBody: Codable, Sendable, Hashable {
    public var error: String
    public var service: String
    public var upstream: String?
    public var upstreamStatus: Int?

    public init(error: String, service: String, upstream: String?, upstreamStatus: Int?) {
        self.error = error
        self.service = service
        self.upstream = upstream
        self.upstreamStatus = upstreamStatus
    }
}

public struct DemoHealth: Codable, Sendable, Hashable {
    public var status: String
    public var service: String

    public init(status: String, service: String) {
        self.status = status
        self.service = service
    }
}

/// The database's deterministic contents: the same id always yields the same records, so
/// responses can be checked and repeated requests are comparable in the trace view.
public enum DemoData {
    static let items = ["widgets", "gears", "sprockets", "bolts", "cables", "panels", "valves"]

    public static func records(forReport id: String) -> [DemoRecord] {
        let hash = fnv1a(id)
        let count = 3 + Int(hash % 3)
        return (0..<count).map { i in
            let bits = hash >> UInt64(8 * i)
            return DemoRecord(
                id: "\(id)-\(i + 1)", item: items[Int(bits % UInt64(items.count))],
                quantity: 1 + Int((bits >> 3) % 9), priceCents: 100 + Int((bits >> 5) % 9_900))
        }
    }

    static func fnv1a(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }

    /// The backend's "business logic": totals and a checksum worked out over many rounds, so
    /// the compute-report span has a visible, CPU-bound duration.
    public static func compute(report id: String, records: [DemoRecord], rounds: Int = 20_000) -> BackendReport {
        let total = records.reduce(0) { $0 + $1.quantity * $1.priceCents }
        var state = fnv1a(id) ^ UInt64(truncatingIfNeeded: total)
        for round in 0..<max(1, rounds) {
            // splitmix64 steps: cheap, deterministic, not optimised away (the result is used).
            state = state &+ 0x9E37_79B9_7F4A_7C15 &+ UInt64(round)
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            state ^= z ^ (z >> 31)
        }
        let checksum = String(state, radix: 16)
        return BackendReport(
            report: id, records: records, totalCents: total,
            checksum: String(repeating: "0", count: max(0, 16 - checksum.count)) + checksum, computedBy: DemoRole.backend.rawValue)
    }
}
