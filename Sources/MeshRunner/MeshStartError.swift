/// Why a mesh did not start, worded for the person who ran `meshtrace up`: what failed, the
/// port or file involved, and the mesh.yaml key (or flag) that sets it. Every start-up failure
/// ends as one of these, so `up` prints it and exits non-zero instead of waiting for ever.
public struct MeshStartError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }

    static func portInUse(_ port: Int, setting: String) -> MeshStartError {
        MeshStartError("port \(port) is already in use; pick another with \(setting) (or 0 for any free port)")
    }
}
