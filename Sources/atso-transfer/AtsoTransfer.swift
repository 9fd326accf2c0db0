import ArgumentParser

@main
struct AtsoTransfer: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "atso-transfer",
    abstract: "Semi-supervised and cross-domain semantic segmentation with ATSO.",
    discussion: """
      Label taxonomies are data: class sets and mappings live in JSON files (see \
      mappings/). Every command has a --help with examples (atso-transfer help COMMAND).

      Shell completion: --generate-completion-script bash, zsh or fish prints a script,
        atso-transfer --generate-completion-script bash \\
          > ~/.local/share/bash-completion/completions/atso-transfer
        atso-transfer --generate-completion-script zsh > ~/.zfunc/_atso-transfer

      Examples:
        atso-transfer demo --output atso-demo
        atso-transfer mapping show cityscapes-34--cityscapes-19
        atso-transfer dataset info 'camvid:data/camvid/train.txt?include=0001TP'
      """,
    version: "0.1.0",
    subcommands: [
      TransferCommand.self, ResumeCommand.self, MappingCommand.self, NiftiInfo.self,
      MedicalDice.self, DatasetCommand.self, TrainCommand.self,
      EvaluateCommand.self, PredictCommand.self, AdaptBNCommand.self, DemoCommand.self,
      PredictVolume.self, ExportCommand.self, ImportCommand.self, DoctorCommand.self,
    ])
}
