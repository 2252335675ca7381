import ArgumentParser
import SidecarCLI

@main
struct Meshtrace: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "meshtrace",
        abstract: "See every request as it crosses your services.",
        subcommands: [DemoCommand.self, UpCommand.self, DownCommand.self, AnalyzeCommand.self, CollectorCommand.self, SidecarCommand.self, IptablesCommand.self, StatusCommand.self, TelemetryCommand.self, ProxyConfigCommand.self, PrometheusConfigCommand.self, DemoServiceCommand.self, MeshGuardCommand.self, InjectCommand.self, InjectorCommand.self, InstallCommand.self]
    )
}
