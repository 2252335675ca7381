/// For the commands: whether `capture: netns` can run here, and cleaning up after a run that
/// could not (`meshtrace down`).
public enum CaptureSupport {
    /// Why not (not root, not Linux, a tool missing), or nil.
    public static func unavailable() -> String? { PodNetwork.unavailable() }

    /// Removes the network namespaces (and the processes in them, and their hosts files) of
    /// `mesh`'s runs, or of every mesh when nil; returns their names.
    public static func removeNamespaces(mesh: String?) -> [String] {
        guard let mesh else {
            let all = PodNetwork.namespaces().filter { $0.hasPrefix(PodNetwork.prefix) }
            return all.flatMap { name in PodNetwork.removeLeftovers(mesh: meshName(of: name), all: true) }
        }
        return PodNetwork.removeLeftovers(mesh: mesh, all: true)
    }

    /// The namespaces of `mesh` (or of every mesh) that exist, without removing them.
    public static func leftoverNamespaces(mesh: String?) -> [String] {
        let prefix = mesh.map { PodNetwork.namespacePrefix(mesh: $0) } ?? PodNetwork.prefix
        return PodNetwork.namespaces().filter { $0.hasPrefix(prefix) }
    }

    /// `meshtrace-MESH-SERVICE-PID` → MESH.
    static func meshName(of namespace: String) -> String {
        let parts = namespace.dropFirst(PodNetwork.prefix.count).split(separator: "-")
        return parts.first.map(String.init) ?? ""
    }
}
