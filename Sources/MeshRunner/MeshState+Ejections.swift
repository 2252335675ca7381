import SidecarProxy

extension MeshState {
    /// What the callers' sidecars know of each replica, by its inbound address: ejections summed
    /// over every caller (gateway, services, egress listeners), ejected if any caller ejects it
    /// now. Only replicas of services with several endpoints appear.
    static func endpointStats(_ servers: [SidecarServer]) -> [String: (ejections: Int, ejected: Bool)] {
        var out: [String: (ejections: Int, ejected: Bool)] = [:]
        for server in servers {
            for set in server.endpointSets.all {
                for s in set.stats {
                    let before = out[s.endpoint.address] ?? (0, false)
                    out[s.endpoint.address] = (before.ejections + s.ejections, before.ejected || s.ejected)
                }
            }
        }
        return out
    }
}
