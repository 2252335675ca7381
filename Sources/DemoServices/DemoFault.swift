/// Faults the demo database plays, named by the report id: `err-7` answers 500, `slow-800-7`
/// answers after 800 ms (at most 10 s). Any other id is served normally.
public enum DemoFault: Sendable, Equatable {
    case failure
    case slow(Duration)

    public static let maxDelayMs = 10_000

    public init?(reportID id: String) {
        if id.hasPrefix("err-") || id == "err" {
            self = .failure
            return
        }
        let parts = id.split(separator: "-")
        guard parts.count >= 2, parts[0] == "slow", let ms = Int(parts[1]), ms > 0 else { return nil }
        self = .slow(.milliseconds(min(ms, Self.maxDelayMs)))
    }

    /// The report id that plays this fault (`n` keeps ids distinct).
    public static func reportID(failing n: Int) -> String { "err-\(n)" }
    public static func reportID(slowMs: Int, _ n: Int) -> String { "slow-\(slowMs)-\(n)" }
}
