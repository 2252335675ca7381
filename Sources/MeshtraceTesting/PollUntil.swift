/// Checks `condition` every 10 ms until it holds, and throws `TimedOut` after `limit`: for a
/// state another task reaches in its own time (a writer that commits, a loop that parks). The
/// limit only matters when the test is failing, so it is generous.
public func pollUntil(_ limit: Duration = .seconds(30), _ what: String, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + limit
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TimedOut(what: what, limit: limit) }
        try await Task.sleep(for: .milliseconds(10))  // the poll's period, not a wait for a task
    }
}
