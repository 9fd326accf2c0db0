import ArgumentParser

@main
struct AtsoTransfer: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "atso-transfer",
    abstract: "Semi-supervised and cross-domain semantic segmentation with ATSO.",
    discussion: """
      Label taxonomies are data: class sets and mappings live in JSON files (see mappings/).
      """,
    version: "0.1.0",
    subcommands: [
      TransferCommand.self, ResumeCommand.self, MappingCommand.self, NiftiInfo.self,
      MedicalDice.self, DatasetCommand.self, TrainCommand.self,
      EvaluateCommand.self, PredictCommand.self, AdaptBNCommand.self, DemoCommand.self,
      PredictVolume.self, ExportCommand.self, ImportCommand.self,
    ])
}
