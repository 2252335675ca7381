#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// Where each running `meshtrace up` (or `demo`) leaves its control URL, so `meshtrace
/// telemetry set`, `status` and `proxy-config` find it without flags. One file per mesh,
/// named by the mesh's `name:` and control port (`meshes/shop-15100.json`): a second mesh, or a
/// second `up` that fails, never overwrites or deletes the file of one that runs.
public enum MeshStateFile {
    /// `$MESHTRACE_STATE_DIR`, else `$XDG_STATE_HOME/meshtrace`, else `~/.local/state/meshtrace`.
    public static func directory(environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let dir = env["MESHTRACE_STATE_DIR"], !dir.isEmpty { return dir }
        if let xdg = env["XDG_STATE_HOME"], !xdg.isEmpty { return xdg + "/meshtrace" }
        return homeDirectory(environment: env) + "/.local/state/meshtrace"
    }

    /// `$HOME` as shells and every other tool read it; the password database only when it is
    /// unset. Foundation's `NSHomeDirectory()` on Linux reads the database first, so a service
    /// account whose entry says `/nonexistent` could not keep state even with `HOME` set.
    public static func homeDirectory(environment env: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let home = env["HOME"], !home.isEmpty { return home }
        return NSHomeDirectory()
    }

    public static func path(directory: String, mesh: String, controlPort: Int) -> String {
        let safe = String(mesh.map { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" ? $0 : "_" })
        return "\(directory)/meshes/\(safe)-\(controlPort).json"
    }

    /// What a running mesh records about itself.
    public struct Contents: Codable, Sendable, Equatable {
        public var mesh: String
        public var controlURL: String
        public var pid: Int32
        public var gatewayURL: String?
        public var queryURL: String?
        /// service name -> pid (its process group) when the mesh became ready.
        public var services: [String: Int32]
    }

    /// A state file and what it says.
    public struct Entry: Sendable {
        public var path: String
        public var contents: Contents
        /// The mesh's own process is still running.
        public var isRunning: Bool { kill(contents.pid, 0) == 0 }
    }

    /// Writes the file for a mesh that is ready; returns its path.
    @discardableResult
    static func write(_ ready: MeshReady, mesh: String, directory: String, logger: Logger) -> String? {
        let port = URLComponents(string: ready.controlURL)?.port ?? 0
        let path = path(directory: directory, mesh: mesh, controlPort: port)
        var pids: [String: Int32] = [:]
        for service in ready.services { if let pid = service.pid { pids[service.name] = pid } }
        let contents = Contents(mesh: mesh, controlURL: ready.controlURL, pid: getpid(), gatewayURL: ready.gatewayURL,
                                queryURL: ready.queryURL, services: pids)
        do {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            // Written aside and renamed, so a reader never sees half a file.
            try encoder.encode(contents).write(to: URL(fileURLWithPath: path), options: .atomic)
            return path
        } catch {
            logger.warning("cannot write mesh state file", metadata: ["path": "\(path)", "error": "\(error)"])
            return nil
        }
    }

    /// Removes `path` only if it is this process's own file.
    static func removeOwn(_ path: String) {
        guard let entry = read(path), entry.contents.pid == getpid() else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    static func read(_ path: String) -> Entry? {
        guard let data = FileManager.default.contents(atPath: path),
              let contents = try? JSONDecoder().decode(Contents.self, from: data) else { return nil }
        return Entry(path: path, contents: contents)
    }

    /// Every state file in `directory`, running or not, by mesh name.
    public static func all(directory: String) -> [Entry] {
        let folder = directory + "/meshes"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.filter { $0.hasSuffix(".json") }.sorted().compactMap { read(folder + "/" + $0) }
    }

    /// The meshes whose process is alive.
    public static func running(directory: String) -> [Entry] {
        all(directory: directory).filter(\.isRunning)
    }

    /// The mesh a command talks to: the one named, else the only one running.
    public static func select(mesh: String?, directory: String) throws(MeshStartError) -> Entry {
        let running = running(directory: directory)
        let list = running.map { "\($0.contents.mesh) (\($0.contents.controlURL))" }.joined(separator: ", ")
        if let mesh {
            let named = running.filter { $0.contents.mesh == mesh }
            if named.count == 1, let only = named.first { return only }
            if named.isEmpty {
                throw MeshStartError("no running mesh named '\(mesh)'" + (running.isEmpty ? "" : "; running: \(list)"))
            }
            throw MeshStartError("\(named.count) meshes named '\(mesh)' are running: \(list); pass --control URL")
        }
        if running.count == 1, let only = running.first { return only }
        if running.isEmpty {
            throw MeshStartError("no running mesh found: start one with `meshtrace up` or `meshtrace demo`, or pass --control URL")
        }
        throw MeshStartError("\(running.count) meshes are running: \(list); pick one with --mesh NAME")
    }

    /// Files left by a mesh whose process died without cleaning up (SIGKILL, a crash): each is
    /// described, with any of its service processes still running, and removed.
    public static func collectLeftovers(directory: String) -> [String] {
        all(directory: directory).filter { !$0.isRunning }.map { entry in
            try? FileManager.default.removeItem(atPath: entry.path)
            let alive = entry.contents.services.filter { kill(-$0.value, 0) == 0 || kill($0.value, 0) == 0 }.sorted { $0.key < $1.key }
            var text = "mesh '\(entry.contents.mesh)' (pid \(entry.contents.pid), \(entry.contents.controlURL)) did not stop cleanly; removed its state file"
            if !alive.isEmpty {
                let list = alive.map { "\($0.key) (pid \($0.value))" }.joined(separator: ", ")
                text += "; still running: \(list): stop them with kill -TERM -\(alive.map { String($0.value) }.joined(separator: " -"))"
            }
            return text
        }
    }
}
