import Testing

@testable import MeshRunner

@Suite struct MeshStateFileTests {
    @Test func homeComesFromTheEnvironmentFirst() {
        // A service account's password entry may say /nonexistent; HOME set for it must win.
        #expect(MeshStateFile.homeDirectory(environment: ["HOME": "/srv/mesh"]) == "/srv/mesh")
        #expect(MeshStateFile.directory(environment: ["HOME": "/srv/mesh"]) == "/srv/mesh/.local/state/meshtrace")
    }

    @Test func explicitDirectoriesComeBeforeHome() {
        let env = ["HOME": "/srv/mesh", "XDG_STATE_HOME": "/var/state"]
        #expect(MeshStateFile.directory(environment: env) == "/var/state/meshtrace")
        #expect(MeshStateFile.directory(environment: env.merging(["MESHTRACE_STATE_DIR": "/run/m"]) { $1 }) == "/run/m")
    }

    @Test func oneFilePerMeshByNameAndControlPort() {
        #expect(MeshStateFile.path(directory: "/s", mesh: "shop", controlPort: 15100) == "/s/meshes/shop-15100.json")
        #expect(MeshStateFile.path(directory: "/s", mesh: "../x y", controlPort: 1) == "/s/meshes/___x_y-1.json")
    }

    @Test func anEmptyHomeFallsBackToThePasswordDatabase() {
        #expect(!MeshStateFile.homeDirectory(environment: ["HOME": ""]).isEmpty)
    }
}
