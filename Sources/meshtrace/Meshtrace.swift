import ArgumentParser

@main
struct Meshtrace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshtrace",
        abstract: "See every request as it crosses your services.",
        subcommands: [CollectorCommand.self, SidecarCommand.self]
    )
}
