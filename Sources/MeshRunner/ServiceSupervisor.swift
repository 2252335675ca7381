import Foundation
import Logging
import Synchronization

/// Keeps one service process running: starts it, streams its output with a coloured name,
/// restarts it with exponential backoff when it crashes, and stops its whole process group.
final class ServiceSupervisor: Sendable {
    enum Phase: String, Sendable {
        case starting, running, crashed, stopping, stopped
    }

    struct Status: Sendable {
        var phase: Phase = .starting
        var pid: Int32?
        var restarts = 0
        var lastExitCode: Int32?
    }

    let name: String
    let arguments: [String]
    let environment: [String: String]
    let workingDirectory: String?
    private let output: LogPrinter
    private let logger: Logger
    private let processGuard: MeshGuard?
    private let state = Mutex<(status: Status, process: ChildProcess?, stopping: Bool)>((Status(), nil, false))

    init(name: String, arguments: [String], environment: [String: String], workingDirectory: String?, output: LogPrinter, logger: Logger,
         processGuard: MeshGuard? = nil) {
        self.processGuard = processGuard
        self.name = name
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.output = output
        self.logger = logger
    }

    var status: Status { state.withLock { $0.status } }

    /// Runs until `stop()`; crash restarts back off 1 s, 2 s, 4 s … 30 s, reset after 30 s of uptime.
    func run() async {
        var backoff = 1.0
        while !state.withLock({ $0.stopping }) {
            let started = ContinuousClock.now
            let process: ChildProcess
            do {
                let name = self.name
                let output = self.output
                process = try ChildProcess(arguments: arguments, environment: environment, workingDirectory: workingDirectory) { line, isError in
                    output.line(service: name, text: line, isError: isError)
                }
            } catch {
                logger.error("cannot start service", metadata: ["service": "\(name)", "error": "\(error)"])
                state.withLock { $0.status.phase = .crashed }
                if await sleepUnlessStopped(seconds: backoff) { return }
                backoff = min(30, backoff * 2)
                continue
            }
            processGuard?.started(group: process.pid)
            let stoppingNow = state.withLock { s -> Bool in
                s.process = process
                s.status.pid = process.pid
                s.status.phase = s.stopping ? .stopping : .running
                return s.stopping
            }
            if stoppingNow { process.signal(SIGTERM) }
            let code = await process.waitForExit()
            process.signal(SIGKILL)  // anything it left behind in its group
            processGuard?.ended(group: process.pid)
            let stopping = state.withLock { s -> Bool in
                s.process = nil
                s.status.lastExitCode = code
                s.status.phase = s.stopping ? .stopped : .crashed
                return s.stopping
            }
            if stopping { return }
            if ContinuousClock.now - started > .seconds(30) { backoff = 1 }
            output.note(service: name, text: "exited with status \(code); restarting in \(Int(backoff)) s")
            if await sleepUnlessStopped(seconds: backoff) { return }
            state.withLock { $0.status.restarts += 1 }
            backoff = min(30, backoff * 2)
        }
        state.withLock { $0.status.phase = .stopped }
    }

    /// Returns true when stopped while waiting. Backoff pacing, not synchronization.
    private func sleepUnlessStopped(seconds: Double) async -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if state.withLock({ $0.stopping }) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return state.withLock { $0.stopping }
    }

    /// SIGTERM to the process group, SIGKILL after `grace`; returns once the group is gone.
    func stop(grace: Duration = .seconds(5)) async {
        let process = state.withLock { s -> ChildProcess? in
            s.stopping = true
            if s.process != nil { s.status.phase = .stopping }
            return s.process
        }
        guard let process else { return }
        process.signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while process.groupAlive, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if process.groupAlive {
            logger.warning("service did not stop in time; killing it", metadata: ["service": "\(name)"])
            process.signal(SIGKILL)
        }
        let killDeadline = ContinuousClock.now + .seconds(5)
        while process.groupAlive, ContinuousClock.now < killDeadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}

/// Interleaves service output on our stdout, one line at a time, with a coloured name column.
final class LogPrinter: Sendable {
    private let lock = Mutex(())
    private let colors: [String: String]
    private let useColor: Bool
    private let width: Int

    init(services: [String]) {
        let palette = ["36", "35", "33", "32", "34", "91", "96", "95"]
        var colors: [String: String] = [:]
        for (i, name) in services.enumerated() { colors[name] = palette[i % palette.count] }
        self.colors = colors
        self.width = max(8, services.map(\.count).max() ?? 8)
        let env = ProcessInfo.processInfo.environment
        self.useColor = env["NO_COLOR"] == nil && (isatty(1) != 0 || env["FORCE_COLOR"] != nil)
    }

    func line(service: String, text: String, isError: Bool) {
        let padded = service.padding(toLength: width, withPad: " ", startingAt: 0)
        let prefix = useColor ? "\u{1B}[\(colors[service] ?? "37")m\(padded) |\u{1B}[0m " : "\(padded) | "
        write(prefix + text)
    }

    func note(service: String, text: String) {
        line(service: service, text: "[meshtrace] " + text, isError: true)
    }

    func write(_ text: String) {
        lock.withLock { _ in
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
        }
    }
}
