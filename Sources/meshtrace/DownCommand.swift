import ArgumentParser
import Foundation
import MeshRunner

#if canImport(Glibc)
import Glibc
#endif

/// `meshtrace down`: stops a running mesh, and removes what one that died left behind: its
/// state file and, for `capture: netns`, its network namespaces with whatever still runs in them.
struct DownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Stop a running mesh and remove what a crashed one left (capture: netns namespaces, state files).")

    @Option(name: .customLong("mesh"), help: "The mesh, by its name (default: every mesh; or the name in -f FILE).")
    var mesh: String?

    @Option(name: .shortAndLong, help: "Take the mesh's name from this mesh file.")
    var file: String?

    func run() async throws {
        var name = mesh
        if name == nil, let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("cannot read \(file)") }
            do {
                name = try MeshFileParser(fileName: file).parse(text).name
            } catch {
                throw CLIError(error.description)
            }
        }
        let directory = MeshStateFile.directory()
        var said = false
        for entry in MeshStateFile.running(directory: directory) where name == nil || entry.contents.mesh == name {
            let pid = entry.contents.pid
            print("stopping mesh '\(entry.contents.mesh)' (pid \(pid)) …")
            fflush(nil)
            kill(pid, SIGTERM)
            let deadline = ContinuousClock.now + .seconds(30)
            while kill(pid, 0) == 0, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
            if kill(pid, 0) == 0 {
                print("mesh '\(entry.contents.mesh)' did not stop within 30 s; killing it")
                kill(pid, SIGKILL)
            }
            said = true
        }
        for line in MeshStateFile.collectLeftovers(directory: directory) {
            print(line)
            said = true
        }
        if geteuid() == 0 {
            let removed = CaptureSupport.removeNamespaces(mesh: name)
            if !removed.isEmpty {
                print("removed network namespaces (and what ran in them): \(removed.joined(separator: ", "))")
                said = true
            }
        } else {
            let left = CaptureSupport.leftoverNamespaces(mesh: name)
            if !left.isEmpty {
                throw CLIError("network namespaces of a capture: netns mesh remain (\(left.joined(separator: ", "))); run `sudo meshtrace down` to remove them")
            }
        }
        if !said { print("nothing to stop: no mesh\(name.map { " named '\($0)'" } ?? "") is running, and none left anything behind") }
    }
}
