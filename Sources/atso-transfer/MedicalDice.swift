import ArgumentParser
import Foundation
import Medical

/// `atso-transfer medical-dice`: Dice of predicted label volumes against ground truth.
struct MedicalDice: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "medical-dice",
    abstract: "Dice per case and the Decathlon's global Dice of predicted NIfTI label maps.",
    discussion: """
      Predictions and ground truth are paired by file name. A class absent from both the \
      prediction and the ground truth of a case has no Dice for that case and is left out of \
      the means. --table maps labels to coarser classes first (e.g. 0,1,1 merges hippocampus \
      anterior and posterior). Dice is printed in percent, as in the run tables.

      Examples:
        atso-transfer medical-dice --predictions pred \\
          --labels Task04_Hippocampus/labelsTr --classes 3
        atso-transfer medical-dice --predictions pred \\
          --labels Task04_Hippocampus/labelsTr --classes 2 --table 0,1,1
      """)

  @Option(help: "Folder of predicted label maps.")
  var predictions: String

  @Option(help: "Folder of ground-truth label maps.")
  var labels: String

  @Option(parsing: .unconditional, help: "Number of classes (after --table), background included.")
  var classes: Int

  @Option(
    parsing: .unconditional,
    help: "Comma-separated lookup table from labels to classes, e.g. 0,1,1.")
  var table: String?

  func validate() throws {
    guard (1...256).contains(classes) else {
      throw ValidationError("--classes must be in 1...256, got \(classes)")
    }
    _ = try parsedTable()
  }

  func parsedTable() throws -> [UInt8]? {
    guard let table else { return nil }
    return try table.split(separator: ",").map { item in
      guard let v = UInt8(item.trimmingCharacters(in: .whitespaces)), Int(v) < classes else {
        throw ValidationError("--table entry '\(item)' is not a class id below \(classes)")
      }
      return v
    }
  }

  func report() throws -> String {
    let pairs = try MedicalDataset.folderPairs(images: predictions, labels: labels)
    let table = try parsedTable()
    var evaluation = DiceEvaluation(classCount: classes, table: table)
    var lines: [String] = []
    var predictedValues = [Bool](repeating: false, count: 256)
    // Percent with two decimals, as the run tables; "-" where a class has no Dice.
    func format(_ d: Double?) -> String { d.map { String(format: "%.2f", 100 * $0) } ?? "-" }
    for c in pairs.cases {
      let predicted = try NIfTI.readLabels(c.image)
      let truth = try NIfTI.readLabels(c.label)
      guard predicted.shape == truth.shape else {
        throw MedicalError.shapeMismatch(
          image: c.image, label: c.label, imageShape: predicted.shape, labelShape: truth.shape)
      }
      try evaluation.checkLabels(predicted.voxels, shape: predicted.shape, path: c.image)
      try evaluation.checkLabels(truth.voxels, shape: truth.shape, path: c.label)
      evaluation.add(prediction: predicted.voxels, groundTruth: truth.voxels)
      for value in predicted.voxels { predictedValues[Int(value)] = true }
      let index = evaluation.perCase.count - 1
      let perClass = evaluation.dice(case: index).dropFirst().map(format).joined(separator: " ")
      lines.append(
        "\(c.name): mean \(format(evaluation.meanDice(case: index))) % [\(perClass)]")
    }
    let global = evaluation.globalDice.dropFirst().map(format).joined(separator: " ")
    let means = evaluation.meanDicePerClass.dropFirst().map(format).joined(separator: " ")
    lines.append("cases: \(pairs.cases.count)")
    lines.append("mean Dice per class (1...), %: [\(means)]")
    lines.append(
      "global Dice per class (1...), %: [\(global)], mean \(format(evaluation.meanGlobalDice)) %")
    // The classes predicted anywhere (label values through --table).
    let predictedClasses = Set(
      predictedValues.indices.filter { predictedValues[$0] }.map { value in
        table.map { value < $0.count ? Int($0[value]) : value } ?? value
      })
    if let warning = singleClassWarning(
      predictedClasses.sorted().map { "class \($0)" }, on: pairs.cases.count == 1 ? "the one case" : "the \(pairs.cases.count) cases")
    {
      lines.append(warning)
    }
    return lines.joined(separator: "\n")
  }

  func run() throws { print(try report()) }
}
