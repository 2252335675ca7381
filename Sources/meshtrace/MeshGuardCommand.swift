import ArgumentParser
import MeshRunner

/// The helper `meshtrace up` starts to stop its services if `up` dies without doing so
/// (see `MeshGuard`). Not for people: hidden from help.
struct MeshGuardCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mesh-guard", abstract: "Stops a mesh's services when `meshtrace up` dies (started by `up`).", shouldDisplay: false)

    @Option(help: "The pid of `meshtrace up`, for the message.") var parent: Int32 = 0

    func run() throws {
        MeshGuard.serve(parent: parent)
    }
}
