import Foundation
import Segmentation
import Taxonomy
import Tensor
import Transfer

extension ImageBackend {
  public func referenceUnits() throws -> [String] { reference.ids }

  public var trainsDataParallel: Bool { true }

  public func trainSource(_ request: SourceTrainingRequest) throws {
    let start = Date()
    var generator = SeededGenerator(seed: request.seed)
    var model = architecture(network: request.network).makeModel(using: &generator)
    if options.initialization != .he { model.initialize(options.initialization, using: &generator) }
    let (trained, summary) = try trainImages(
      model, labeled: labeledItems, pseudo: [], pseudoLevel: .fine(classSet),
      recipe: recipe(student: false), seed: generator.next(), kind: "source",
      lossLog: request.lossLog, dataParallel: request.dataParallel,
      progress: report("source model"))
    guard request.dataParallel.writes else { return }
    try save(trained, to: request.output)
    log(
      summary, "source model" + (request.network.map { " \($0)" } ?? ""),
      seconds: -start.timeIntervalSinceNow, dataParallel: request.dataParallel)
  }

  /// Takes a checkpoint trained elsewhere as M0: its class set and working size were checked
  /// against the run when the backend was created; here its outputs are checked again and it
  /// is written in the run's format (its training state dropped).
  public func importSource(_ request: SourceImportRequest) throws {
    try save(try loadModel(request.checkpoint), to: request.output)
    progress?("source model imported from \(request.checkpoint)")
  }

  /// Reads pseudo label PNGs, checking their size and values (classes of `level` or void).
  func readPseudoLabels(_ sets: [PseudoLabelSet], level: ClassLevel) throws
    -> [(unit: String, labels: [UInt8])]
  {
    var result: [(unit: String, labels: [UInt8])] = []
    for set in sets {
      for unit in set.units {
        let path = set.directory + "/\(unit).png"
        let image = try ImageFile.readLabel(at: path)
        guard image.width == size.width, image.height == size.height else {
          throw TransferError.fileOperation(
            path: path,
            reason: "pseudo label is \(image.width)x\(image.height), working size is \(size)")
        }
        if let i = image.values.firstIndex(where: {
          Int($0) >= level.classCount && !ignoreIndex.isVoid($0)
        }) {
          throw TransferError.fileOperation(
            path: path,
            reason: "pixel \(i) has label \(image.values[i]) (\(level.classCount) classes, "
              + "void \(ignoreIndex))")
        }
        result.append((unit, image.values))
      }
    }
    return result
  }

  public func trainStudent(_ request: StudentTrainingRequest) throws {
    let start = Date()
    let level = try self.level(request.level)
    let labels = try readPseudoLabels(request.pseudoLabels, level: level)
    let indices = try reference.indices(of: labels.map(\.unit), set: "R")
    let pseudo = zip(indices, labels).map { TrainingItem(image: reference.raw[$0], labels: $1.labels) }
    let initial = try loadModel(request.initialCheckpoint)
    let (model, summary) = try trainImages(
      initial, labeled: labeledItems, pseudo: pseudo, pseudoLevel: level,
      recipe: recipe(student: true), seed: request.seed, kind: "student",
      lossLog: request.lossLog, dataParallel: request.dataParallel, progress: report("student"))
    guard request.dataParallel.writes else { return }
    try save(model, to: request.output)
    log(
      summary, "student (\(request.level), \(pseudo.count) pseudo-labeled)",
      seconds: -start.timeIntervalSinceNow, dataParallel: request.dataParallel)
  }

  public func adaptBatchNorm(_ request: BatchNormAdaptationRequest) throws {
    let images = try reference.indices(of: request.units, set: "R").map { reference.images[$0] }
    let model = try loadModel(request.checkpoint)
    try save(
      adaptedBatchNorm(model, images: images, batch: options.training.batch), to: request.output)
    progress?("AdaBN on \(images.count) images")
  }

  public func generatePseudoLabels(_ request: PseudoLabelRequest) throws {
    let level = try self.level(request.level)
    let images = try reference.indices(of: request.units, set: "R").map { reference.images[$0] }
    let decided = try decisions(request.teacherCheckpoint, images: images, level: level)
    let labels = try request.filters.apply(decided, classCount: level.classCount)
    for (unit, values) in zip(request.units, labels) {
      try ImageFile.writePNG(
        LabelImage(width: size.width, height: size.height, values: values),
        to: request.outputDirectory + "/\(unit).png")
    }
    let kept = labels.reduce(0) { $0 + ignoreIndex.countLabeled($1) }
    let total = labels.reduce(0) { $0 + $1.count }
    progress?(
      "pseudo labels (\(request.level)): \(request.units.count) images, "
        + "\(String(format: "%.1f", 100 * Double(kept) / Double(max(1, total))))% of pixels kept")
  }

  /// Each image's own size, then the working size.
  public var scoreResolutions: [ScoreResolution] { [.native, .working] }

  /// Scores a checkpoint on R or E. One prediction pass scores both resolutions (the network
  /// at the working size; at `native` its class probabilities upsampled bilinearly to each
  /// image's own size, as `predict` writes them, against the full-resolution labels; at
  /// `working` against the labels resized, nearest, to the working size); the other result is
  /// kept for the next request.
  public func evaluate(_ request: EvaluationRequest) throws -> Evaluation {
    let key = "\(request.checkpoint)|\(request.set.rawValue)|\(request.level)"
    if let hit = scoreCache[key]?[request.resolution] { return hit }
    let set = request.set == .test ? test : reference
    guard let groundTruth = set.labels, let native = set.nativeLabels else {
      // Only R can be unlabeled (E is checked at init): @R is then reported as 0, no classes.
      progress?("R has no labels: @R is reported as 0")
      return Evaluation(score: 0, perClass: [])
    }
    let level = try self.level(request.level)
    let model = try loadModel(request.checkpoint)
    var atWorking = ConfusionMatrix(classes: level.classes)
    var atNative = ConfusionMatrix(classes: level.classes)
    var start = 0
    while start < set.count {
      let end = min(set.count, start + max(1, options.training.batch))
      let probabilities = predictProbabilities(
        model, images: Array(set.images[start..<end]), batch: end - start)
      for (offset, p) in probabilities.enumerated() {
        let i = start + offset
        atWorking.accumulate(
          groundTruth: level.labels(fromFine: groundTruth[i], ignore: ignoreIndex),
          prediction: level.decide(p).labels)
        let size = ImageSize(height: native[i].height, width: native[i].width)
        atNative.accumulate(
          groundTruth: level.labels(fromFine: native[i].values, ignore: ignoreIndex),
          prediction: level.decide(probabilitiesAtImageSize(p, size: size)).labels)
      }
      start = end
    }
    let sizes = Set(native.map { "\($0.height)x\($0.width)" }).sorted()
    let results: [ScoreResolution: Evaluation] = [
      .native: try Self.evaluation(
        atNative,
        resolution: (sizes.count == 1 ? sizes[0] + ", " : "") + "each image's own size"),
      .working: try Self.evaluation(
        atWorking, resolution: "\(size.height)x\(size.width), the working size"),
    ]
    scoreCache = [key: results]
    return results[request.resolution] ?? results[.native]!
  }

  /// The mean IoU and per-class IoUs of a confusion matrix.
  static func evaluation(_ matrix: ConfusionMatrix, resolution: String) throws -> Evaluation {
    let report = try matrix.report()
    let evaluated = report.perClass.filter(\.isEvaluated)
    let perClass: [Double?] = evaluated.map { $0.iou.isNaN ? nil : $0.iou }
    return Evaluation(
      score: report.meanIoU.isNaN ? 0 : report.meanIoU, perClass: perClass,
      classNames: evaluated.map(\.name),
      predictedClasses: matrix.predictedClassNames, resolution: resolution)
  }

  /// Scores pseudo label PNGs as written (at the working size) against R's labels resized to
  /// it, all sets in one confusion matrix (ATSO's folds joined); a filtered (void) pixel counts
  /// as missed.
  public func scorePseudoLabels(_ request: PseudoLabelScoreRequest) throws -> Evaluation? {
    guard let groundTruth = reference.labels else { return nil }
    let level = try self.level(request.level)
    let labels = try readPseudoLabels(request.labels, level: level)
    let indices = try reference.indices(of: labels.map(\.unit), set: "R")
    var matrix = ConfusionMatrix(classes: level.classes)
    for (i, (_, values)) in zip(indices, labels) {
      matrix.accumulate(
        groundTruth: level.labels(fromFine: groundTruth[i], ignore: ignoreIndex),
        prediction: values)
    }
    return try Self.evaluation(
      matrix, resolution: "\(size.height)x\(size.width), the pseudo labels' size")
  }

  public func agreement(_ request: AgreementRequest) throws -> Double {
    let level = try self.level(request.level)
    let labels = try readPseudoLabels(request.teacherLabels, level: level)
    let images = try reference.indices(of: labels.map(\.unit), set: "R").map {
      reference.images[$0]
    }
    let predicted = try decisions(request.studentCheckpoint, images: images, level: level)
    var same = 0
    var total = 0
    for ((_, teacher), student) in zip(labels, predicted) {
      for (t, s) in zip(teacher, student.labels) where !ignoreIndex.isVoid(t) {
        total += 1
        if t == s { same += 1 }
      }
    }
    return total == 0 ? 1 : Double(same) / Double(total)
  }

  /// Draws `request.count` test images spread over E: the image, its ground truth and each
  /// model's predictions at the request's level, in the level's class colours.
  public func writePreviews(_ request: PreviewRequest) throws -> Bool {
    let picks = evenlySpacedIndices(count: request.count, total: test.count)
    guard !picks.isEmpty, let truths = test.labels else { return false }
    let level = try self.level(request.level)
    let colors = level.classes.displayColors
    let images = picks.map { test.images[$0] }
    let predictions = try request.models.map { model in
      try decisions(model.checkpoint, images: images, level: level).map(\.labels)
    }
    var sheet = ContactSheet(predictionsOf: request.models)
    var shown: [[UInt8]] = []
    for (row, index) in picks.enumerated() {
      let maps = [level.labels(fromFine: truths[index], ignore: ignoreIndex)]
        + predictions.map { $0[row] }
      shown += maps
      sheet.addRow(
        caption: test.ids[index],
        panels: [Normalization.imageNet.rgbImage(from: test.images[index])]
          + maps.map {
            LabelImage(width: size.width, height: size.height, values: $0).colorized(colors)
          })
    }
    sheet.legend = ContactSheet.legend(for: shown, classes: level.classes, colors: colors)
    try writePNG(sheet.render(), to: request.output)
    progress?("predictions of \(request.models.count) models on \(picks.count) test images")
    return true
  }
}

/// What a run reads from the checkpoint it imports as its source model.
struct SourceModelDescription {
  var classSetName: String
  var workingSize: ImageSize?
  var model: NetworkKind
  var widths: [Int]

  /// Reads the checkpoint's description; the working size from the checkpoint, else from the
  /// `training.json` of the `train` folder it lies in.
  init(path: String) throws {
    let description = try Checkpoint.read(from: path).description
    classSetName = description.classSetName
    workingSize = description.workingSize
    if workingSize == nil {
      let folder = (path as NSString).deletingLastPathComponent
      workingSize = try? readRunConfiguration(TrainingRunFiles.configuration(in: folder))
        .augmentation.workingSize
    }
    switch description.architecture {
    case .unet(let c):
      model = .unet
      widths = c.widths
    case .deepLab(let c):
      model = .deeplab
      widths = c.widths
    }
  }

  /// Checks the run's options against the checkpoint.
  ///
  /// - Throws: `TransferError.invalidConfiguration` naming the option that differs.
  func check(classes: String, size: ImageSize?, model: NetworkKind?, widths: [Int]?) throws {
    func fail(_ key: String, _ ours: String, _ theirs: String) -> TransferError {
      .invalidConfiguration(
        file: "configuration", key: "backend.\(key)",
        reason: "\(ours), but the source model has \(theirs) (leave it out to use the model's)")
    }
    if classes != classSetName { throw fail("classes", classes, classSetName) }
    if let size, let workingSize, size != workingSize {
      throw fail(
        "size", "\(size.height)x\(size.width)", "\(workingSize.height)x\(workingSize.width)")
    }
    if size == nil && workingSize == nil {
      throw TransferError.invalidConfiguration(
        file: "configuration", key: "backend.size",
        reason: "the source model records no working size (nor a training.json beside it): "
          + "give size=HxW, the size it was trained at")
    }
    if let model, model != self.model { throw fail("model", model.rawValue, self.model.rawValue) }
    if let widths, widths != self.widths { throw fail("widths", "\(widths)", "\(self.widths)") }
  }
}
