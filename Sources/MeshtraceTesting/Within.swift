import Synchronization

/// Waits for `body` at most `limit`, then fails with `TimedOut`: for a test awaiting something a
/// bug would make never happen (a response that never comes), so that the test fails instead of
/// hanging the suite. The limit is generous because it only matters when the test is failing;
/// `body` is left running if it does not finish (a NIO future ignores task cancellation).
public func within<T: Sendable>(
    _ limit: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = FirstResult<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.start(continuation)
        let timer = Task {
            try? await Task.sleep(for: limit)
            if !Task.isCancelled { race.finish(.failure(TimedOut(what: what, limit: limit))) }
        }
        Task {
            let result: Result<T, any Error>
            do { result = .success(try await body()) } catch { result = .failure(error) }
            race.finish(result)
            timer.cancel()
        }
    }
}

public struct TimedOut: Error, CustomStringConvertible {
    public let what: String
    public let limit: Duration
    public var description: String { "\(what): nothing after \(limit)" }
}

/// Resumes a continuation with whichever result comes first.
private final class FirstResult<T: Sendable>: Sendable {
    private let slot = Mutex<CheckedContinuation<T, any Error>?>(nil)

    func start(_ continuation: CheckedContinuation<T, any Error>) { slot.withLock { $0 = continuation } }

    func finish(_ result: Result<T, any Error>) {
        slot.withLock { s -> CheckedContinuation<T, any Error>? in defer { s = nil }; return s }?.resume(with: result)
    }
}
