#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Open files are a proxy's real connection limit: every client connection may need one to the
/// app or upstream too. Run under a soft limit of 1024 (the usual default for a user's
/// processes), a burst of clients used every descriptor and each request then failed to connect
/// upstream (503 UF) while the proxy kept accepting more.
///
/// So at start the soft limit goes up to the hard one, as Go's runtime does for every program,
/// and the client-connection cap is held to what the limit leaves room for, so connections past
/// it are refused at accept and the ones admitted keep working.
public enum FileDescriptorBudget {
    /// Descriptors kept for everything but client/upstream pairs: the event loops' own (epoll,
    /// eventfd, timerfd), listeners, the collector, metrics and admin scrapes, and the clients
    /// accepted in one batch before the cap refuses them.
    static func reserve(for limit: Int) -> Int { min(128, 16 + limit / 4) }

    /// The client connections `limit` open files can serve, each with an upstream connection.
    public static func downstreamConnections(configured: Int, openFileLimit limit: Int) -> Int {
        min(configured, max(1, (limit - reserve(for: limit)) / 2))
    }

    /// Raises the soft open-file limit to the hard one (at most 1 << 20) and returns the limit
    /// in force, or nil when it cannot be read.
    @discardableResult
    public static func raiseSoftLimit() -> Int? {
        #if canImport(Glibc)
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        let wanted = min(limit.rlim_max, rlim_t(1 << 20))
        if limit.rlim_cur < wanted {
            var raised = limit
            raised.rlim_cur = wanted
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(clamping: limit.rlim_cur)  // RLIM_INFINITY (all ones) clamps to Int.max
        #else
        return nil
        #endif
    }

    /// Raises the limit and lowers `maxDownstreamConnections` to fit it, saying so: a warning
    /// when the value was set by hand, a note when it was the default.
    public static func apply(to configured: Int, explicit: Bool, logger: Logger) -> Int {
        guard let limit = raiseSoftLimit() else { return configured }
        let fitted = downstreamConnections(configured: configured, openFileLimit: limit)
        if fitted < configured {
            logger.log(
                level: explicit ? .warning : .info,
                "max-downstream-connections lowered to fit the open-file limit; raise the limit (ulimit -n, LimitNOFILE=) for more",
                metadata: ["configured": "\(configured)", "lowered_to": "\(fitted)", "open_file_limit": "\(limit)"])
        }
        return fitted
    }
}
