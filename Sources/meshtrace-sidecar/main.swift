import ArgumentParser
import SidecarCLI

/// The sidecar alone, for deploying beside an app (a container next to it, a systemd unit):
/// the same command as `meshtrace sidecar`, in a binary without the collector, the UI, SQLite
/// and the mesh runner. A sidecar runs once per service instance, and what a binary holds shows
/// in every instance's resident memory (the runtime walks every module's type records).
@main
struct SidecarMain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshtrace-sidecar", abstract: SidecarCommand.configuration.abstract,
        discussion: SidecarCommand.configuration.discussion,
        // `meshtrace-sidecar iptables`: the init step, in the same image as the sidecar.
        subcommands: [IptablesCommand.self])

    @OptionGroup var sidecar: SidecarCommand

    func run() async throws {
        try await sidecar.run()
    }
}
