import Logging

/// The log handler for our HTTP listeners (Hummingbird servers): warnings and errors only, and
/// without the two lines Hummingbird logs at error level whenever a server is stopped by
/// cancellation (`Waiting on child channel: CancellationError()`, and `Server shutdown error:
/// Already closed` from an unstructured task that can outlive the server's `run`).
///
/// Both are expected on every stop that is not a graceful one: `meshtrace up` cancels the
/// collector's and the control plane's listeners when a service cannot start. Seen on a
/// loaded machine, ten such lines came before the real error, and the last ones were written
/// *while* the process printed that error, cutting it mid-word ("E…rror: services[0]." and the
/// rest two lines later). Real listener failures (a taken port) are thrown, not logged, so
/// nothing a user needs is dropped.
public struct ListenerLogHandler: LogHandler {
    private var wrapped: StreamLogHandler

    public init(label: String, level: Logger.Level = .warning) {
        wrapped = StreamLogHandler.standardError(label: label)
        wrapped.logLevel = max(.warning, level)
    }

    /// True for the messages Hummingbird logs when a listener is cancelled.
    public static func isCancellationNoise(_ message: String) -> Bool {
        message.hasPrefix("Waiting on child channel: CancellationError")
            || message == "Server shutdown error: Already closed"
    }

    public func log(event: LogEvent) {
        if Self.isCancellationNoise(event.message.description) { return }
        wrapped.log(event: event)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    public var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    public var logLevel: Logger.Level {
        get { wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }
}
