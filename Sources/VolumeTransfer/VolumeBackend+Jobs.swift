import Foundation
import Medical
import Segmentation
import Taxonomy
import Tensor
import Transfer

extension VolumeBackend {
  public func referenceUnits() throws -> [String] { split.reference }

  public func trainSource(_ request: SourceTrainingRequest) throws {
    try Self.refuseDataParallel(request.dataParallel)
    var generator = SeededGenerator(seed: request.seed)
    var networks = ViewNetworks(
      widths: widths, classCount: classCount, neighbours: neighbours, using: &generator)
    try train(
      &networks, level: try self.level(.fine), pseudo: [], student: false, seed: generator.next(),
      what: "source model", lossLog: request.lossLog)
    try networks.write(to: request.output, classSetName: classSet.name)
  }

  /// Takes three view checkpoints trained elsewhere as M0 (their classes and inputs were
  /// checked when the backend was created).
  public func importSource(_ request: SourceImportRequest) throws {
    let networks = try ViewNetworks.read(from: request.checkpoint)
    guard networks.classCount == classCount, networks.neighbours == neighbours else {
      throw TransferError.fileOperation(
        path: request.checkpoint,
        reason: "predicts \(networks.classCount) classes from \(networks.neighbours) neighbours; "
          + "the run needs \(classCount) and \(neighbours)")
    }
    try networks.write(to: request.output, classSetName: classSet.name)
    progress?("source model imported from \(request.checkpoint)")
  }

  public func trainStudent(_ request: StudentTrainingRequest) throws {
    try Self.refuseDataParallel(request.dataParallel)
    let level = try self.level(request.level)
    var networks = try ViewNetworks.read(from: request.initialCheckpoint)
    var pseudo: [TrainingCase] = []
    for set in request.pseudoLabels {
      for unit in set.units {
        let labels = try readPseudoLabels(set, unit: unit, level: level)
        pseudo.append(
          TrainingCase(
            name: unit, slicer: CaseSlicer(image: try load(unit).image, labels: labels),
            isPseudoLabeled: true))
      }
    }
    try train(
      &networks, level: level, pseudo: pseudo, student: true, seed: request.seed,
      what: "student (\(request.level), \(pseudo.count) pseudo-labeled cases)",
      lossLog: request.lossLog)
    try networks.write(to: request.output, classSetName: classSet.name)
  }

  /// Refuses replicas: the three view networks train on one rank (``trainsDataParallel`` is
  /// false, so a transfer run trains on a group's leader alone; a caller that passed replicas
  /// anyway would have each train the whole model and write the same files).
  static func refuseDataParallel(_ dataParallel: DataParallel?) throws {
    guard let dataParallel, dataParallel.replicas.count > 1 else { return }
    throw TransferError.invalidConfiguration(
      file: "training request", key: "dataParallel",
      reason: "the volume backend trains each model on one rank, not on "
        + "\(dataParallel.replicas.count) (under --ranks-per-job a group's leader trains alone)")
  }

  public func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws {
    var networks = try ViewNetworks.read(from: request.checkpoint)
    let slicers = try request.units.map { CaseSlicer(image: try load($0).image) }
    networks.adaptBatchNorm(on: slicers, batchSize: options.training.batch)
    try networks.write(to: request.output, classSetName: classSet.name)
    progress?("AdaBN on \(slicers.count) cases")
  }

  public func generatePseudoLabels(_ request: PseudoLabelRequest) throws {
    let networks = try ViewNetworks.read(from: request.teacherCheckpoint)
    let level = try self.level(request.level)
    let start = Date()
    var cached = 0
    let decisions = try request.units.enumerated().map { index, unit in
      if hasPrediction(checkpoint: request.teacherCheckpoint, unit, level: request.level) {
        cached += 1
      }
      let (labels, confidences) = try predict(
        networks, checkpoint: request.teacherCheckpoint, unit, level: request.level)
      jobProgress?(
        .items(
          Self.task("pseudo labels", cached: cached, done: index + 1), done: index + 1,
          total: request.units.count, unit: "cases", since: start))
      return ClassDecisions(labels: labels, confidences: confidences)
    }
    let labels = try request.filters.apply(decisions, classCount: level.classCount)
    for (unit, kept) in zip(request.units, labels) {
      try NIfTI.write(
        Volume(geometry: try load(unit).image.geometry, voxels: kept),
        to: pseudoLabelPath(request.outputDirectory, unit))
    }
  }

  /// Dice of a model on a list of cases at a level, and which classes it predicted.
  ///
  /// - Parameter task: what the progress of the cases is reported as.
  public func dice(
    checkpoint: String, units: [String], level: LabelLevel, task: String = "Dice"
  ) throws -> (evaluation: DiceEvaluation, predicted: [Bool]) {
    let networks = try ViewNetworks.read(from: checkpoint)
    let resolved = try self.level(level)
    var evaluation = DiceEvaluation(classCount: resolved.classCount)
    var predicted = [Bool](repeating: false, count: 256)
    let start = Date()
    var cached = 0
    for (index, unit) in units.enumerated() {
      if hasPrediction(checkpoint: checkpoint, unit, level: level) { cached += 1 }
      let prediction = try predict(networks, checkpoint: checkpoint, unit, level: level).labels
      for label in prediction { predicted[Int(label)] = true }
      evaluation.add(prediction: prediction, groundTruth: try groundTruth(unit, level: resolved))
      jobProgress?(
        .items(
          Self.task(task, cached: cached, done: index + 1), done: index + 1, total: units.count,
          unit: "cases", since: start))
    }
    return (evaluation, predicted)
  }

  /// Mean foreground Dice and per-class Dice on each case's voxel grid (the only resolution:
  /// the view networks predict the case's own slices); see the type's notes.
  public func evaluate(_ request: EvaluationRequest) throws -> Evaluation {
    let units = request.set == .test ? split.test : split.reference
    let name = request.set == .test ? "E" : "R"
    let (evaluation, predicted) = try dice(
      checkpoint: request.checkpoint, units: units, level: request.level, task: "Dice on \(name)")
    let classes = try level(request.level).classes
    var result = Self.evaluation(evaluation, classes: classes)
    result.predictedClasses = predictedClassNames(predicted, classes: classes)
    return result
  }

  /// Dice of pseudo label volumes as written against R's ground truth (filtered voxels count
  /// as missed), with the cases of all sets together.
  public func scorePseudoLabels(_ request: PseudoLabelScoreRequest) throws -> Evaluation? {
    let level = try self.level(request.level)
    var evaluation = DiceEvaluation(classCount: level.classCount)
    for set in request.labels {
      for unit in set.units {
        evaluation.add(
          prediction: try readPseudoLabels(set, unit: unit, level: level).voxels,
          groundTruth: try groundTruth(unit, level: level))
      }
    }
    return Self.evaluation(evaluation, classes: level.classes)
  }

  /// The ``Evaluation`` of a Dice evaluation: mean of the foreground classes' mean Dice, with the
  /// names of `classes` (background first).
  public static func evaluation(_ dice: DiceEvaluation, classes: ClassSet? = nil) -> Evaluation {
    let perClass = dice.meanDicePerClass
    let foreground = perClass.dropFirst().compactMap { $0 }
    let mean = foreground.isEmpty ? 0 : foreground.reduce(0, +) / Double(foreground.count)
    return Evaluation(
      metric: .meanDice, score: mean, perClass: perClass,
      classNames: classes.map { set in
        perClass.indices.map { set.semanticClass(id: $0)?.name ?? "\($0)" }
      }, resolution: "each case's voxel grid")
  }

  /// The share of the teachers' non-void voxels where the student predicts the same class.
  public func agreement(_ request: AgreementRequest) throws -> Double {
    let networks = try ViewNetworks.read(from: request.studentCheckpoint)
    let level = try self.level(request.level)
    var agree = 0
    var total = 0
    for set in request.teacherLabels {
      for unit in set.units {
        let labels = try readPseudoLabels(set, unit: unit, level: level).voxels
        let prediction = try predict(
          networks, checkpoint: request.studentCheckpoint, unit, level: request.level
        ).labels
        for i in labels.indices where !ignoreIndex.isVoid(labels[i]) {
          total += 1
          if labels[i] == prediction[i] { agree += 1 }
        }
      }
    }
    return total == 0 ? 1 : Double(agree) / Double(total)
  }

  /// Draws `request.count` test cases spread over E: for each, the axial slice (canonical RAS
  /// orientation, shown radiologically: patient right on the left, anterior up) with the most
  /// ground-truth foreground, its ground truth and each model's fused prediction.
  public func writePreviews(_ request: PreviewRequest) throws -> Bool {
    let picks = evenlySpacedIndices(count: request.count, total: split.test.count)
      .map { split.test[$0] }
    guard !picks.isEmpty else { return false }
    let level = try self.level(request.level)
    let classes = level.classes
    let colors = classes.displayColors
    let networks = try request.models.map { try ViewNetworks.read(from: $0.checkpoint) }
    var slices: [(caption: String, image: [Float], maps: [[UInt8]], width: Int, height: Int)] = []
    for unit in picks {
      let image = try load(unit).image
      let reorientation = Reorientation(image.geometry)
      let canonicalShape = reorientation.canonicalShape
      let truth = reorientation.toCanonical(try groundTruth(unit, level: level))
      let predicted = try zip(request.models, networks).map { model, network in
        reorientation.toCanonical(
          try predict(network, checkpoint: model.checkpoint, unit, level: request.level).labels)
      }
      let volume = reorientation.toCanonical(image.voxels)
      let (nx, ny, nz) = (canonicalShape[0], canonicalShape[1], canonicalShape[2])
      let plane = nx * ny
      let foreground = (0..<nz).map { z in
        truth[(z * plane)..<((z + 1) * plane)].reduce(0) {
          $0 + ($1 != 0 && !ignoreIndex.isVoid($1) ? 1 : 0)
        }
      }
      let z = foreground.indices.max { foreground[$0] < foreground[$1] } ?? nz / 2
      // Display pixel (row r, column c) = voxel (nx - 1 - c, ny - 1 - r, z).
      func slice<T>(_ values: [T]) -> [T] {
        (0..<ny).flatMap { r in
          (0..<nx).map { c in values[z * plane + (ny - 1 - r) * nx + (nx - 1 - c)] }
        }
      }
      slices.append(
        ("\(unit), axial slice \(z + 1)/\(nz)", slice(volume), [slice(truth)] + predicted.map(slice),
          nx, ny))
    }
    // Panels share one size: smaller slices are centred on black.
    let width = slices.map(\.width).max() ?? 1
    let height = slices.map(\.height).max() ?? 1
    var sheet = ContactSheet(predictionsOf: request.models)
    var shown: [[UInt8]] = []
    for item in slices {
      let (dx, dy) = ((width - item.width) / 2, (height - item.height) / 2)
      func padded(_ pixels: [UInt8]) -> RGBImage {
        var out = [UInt8](repeating: 0, count: 3 * width * height)
        for r in 0..<item.height {
          let source = 3 * r * item.width
          let target = 3 * ((r + dy) * width + dx)
          out.replaceSubrange(target..<(target + 3 * item.width), with: pixels[source..<(source + 3 * item.width)])
        }
        return RGBImage(width: width, height: height, pixels: out)
      }
      let gray = item.image.flatMap { v -> [UInt8] in
        let g = UInt8(max(0, min(255, (v * 255).rounded())))
        return [g, g, g]
      }
      shown += item.maps
      sheet.addRow(
        caption: item.caption,
        panels: [padded(gray)]
          + item.maps.map {
            padded(
              LabelImage(width: item.width, height: item.height, values: $0).colorized(colors)
                .pixels)
          })
    }
    sheet.legend = ContactSheet.legend(for: shown, classes: classes, colors: colors)
    try writePNG(sheet.render(), to: request.output)
    return true
  }
}
