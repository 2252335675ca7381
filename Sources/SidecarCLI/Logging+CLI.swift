import Logging

/// Every command logs to stderr at `--log-level`, so stdout stays for what the command prints
/// (tables, JSON). Returns the command's own logger at that level. Shared by both executables
/// (`meshtrace` and the sidecar-only `meshtrace-sidecar`), which is why it lives here.
public func bootstrapLogging(_ level: String, label: String) -> Logger {
    let parsed = Logger.Level(rawValue: level) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = parsed
        return handler
    }
    var logger = Logger(label: label)
    logger.logLevel = parsed
    return logger
}
