import Testing

@testable import MeshRunner

@Suite struct MeshStateFileTests {
    @Test func homeComesFromTheEnvironmentFirst() {
        // A service account's password entry may say /nonexistent; HOME set for it must win.
        #expect(MeshStateFile.homeDirectory(environment: ["HOME": "/srv/mesh"]) == "/srv/mesh")
        #expect(MeshStateFile.defaultPath(environment: ["HOME": "/srv/mesh"]) == "/srv/mesh/.local/state/meshtrace/mesh.json")
    }

    @Test func explicitDirectoriesComeBeforeHome() {
        let env = ["HOME": "/srv/mesh", "XDG_STATE_HOME": "/var/state"]
        #expect(MeshStateFile.defaultPath(environment: env) == "/var/state/meshtrace/mesh.json")
        #expect(MeshStateFile.defaultPath(environment: env.merging(["MESHTRACE_STATE_DIR": "/run/m"]) { $1 }) == "/run/m/mesh.json")
    }

    @Test func anEmptyHomeFallsBackToThePasswordDatabase() {
        #expect(!MeshStateFile.homeDirectory(environment: ["HOME": ""]).isEmpty)
    }
}
