import Foundation
import Logging

/// Where a running `meshtrace up` leaves its control URL, so `meshtrace telemetry set`,
/// `status` and `proxy-config` find it without flags.
public enum MeshStateFile {
    public static func defaultPath(environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let dir = env["MESHTRACE_STATE_DIR"], !dir.isEmpty { return dir + "/mesh.json" }
        if let xdg = env["XDG_STATE_HOME"], !xdg.isEmpty { return xdg + "/meshtrace/mesh.json" }
        return homeDirectory(environment: env) + "/.local/state/meshtrace/mesh.json"
    }

    /// `$HOME` as shells and every other tool read it; the password database only when it is
    /// unset. Foundation's `NSHomeDirectory()` on Linux reads the database first, so a service
    /// account whose entry says `/nonexistent` could not keep state even with `HOME` set.
    public static func homeDirectory(environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = env["HOME"], !home.isEmpty { return home }
        return NSHomeDirectory()
    }

    struct Contents: Codable {
        var controlURL: String
        var pid: Int32
        var gatewayURL: String?
        var queryURL: String?
    }

    static func write(_ ready: MeshReady, to path: String, logger: Logger) {
        let contents = Contents(controlURL: ready.controlURL, pid: ProcessInfo.processInfo.processIdentifier, gatewayURL: ready.gatewayURL, queryURL: ready.queryURL)
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try JSONEncoder().encode(contents).write(to: URL(fileURLWithPath: path))
        } catch {
            logger.warning("cannot write mesh state file", metadata: ["path": "\(path)", "error": "\(error)"])
        }
    }

    /// The query (UI) URL of the running mesh, if its state file exists and its process is alive.
    public static func queryURL(at path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path),
              let contents = try? JSONDecoder().decode(Contents.self, from: data),
              kill(contents.pid, 0) == 0
        else { return nil }
        return contents.queryURL
    }

    /// The control URL of the running mesh, if its state file exists and its process is alive.
    public static func controlURL(at path: String) -> String? {
        guard let data = FileManager.default.contents(atPath: path),
              let contents = try? JSONDecoder().decode(Contents.self, from: data),
              kill(contents.pid, 0) == 0
        else { return nil }
        return contents.controlURL
    }
}
