import Foundation

extension TransferRun {

  /// The models of `predictions.png` and their level: the first stage's source model (source
  /// only), then for each schedule the last model of the last stage.
  func previewModels() -> (models: [PreviewModel], level: LabelLevel) {
    let last = configuration.stages[configuration.stages.count - 1]
    var models: [PreviewModel] = []
    var column: [String: Int] = [:]  // by model id
    func add(_ entry: ReportEntry?, title: String) {
      guard let entry else { return }
      // A model that ends two schedules (self-learning and STSO after one generation) is one
      // column named for both.
      if let index = column[entry.model] {
        models[index].title += " = \(title)"
        return
      }
      guard let job = plan.jobs.first(where: { $0.id == entry.evaluationJob }),
        case .evaluate(let evaluation) = job.action
      else { return }
      column[entry.model] = models.count
      models.append(PreviewModel(title: title, checkpoint: path(evaluation.model.checkpoint)))
    }
    add(
      plan.entries.first { $0.stage == configuration.stages[0].name && $0.generation == 0 },
      title: "source only")
    for schedule in configuration.schedules {
      let entry = plan.entries.last { $0.stage == last.name && $0.schedule == schedule }
      let generation = entry?.generation.map { "g\($0)" } ?? "final"
      let stage = configuration.stages.count > 1 ? " \(last.name)" : ""
      add(entry, title: "\(ResultsTable.title(schedule))\(stage) \(generation)")
    }
    return (models, last.level)
  }

  /// Writes `predictions.png` (``TransferConfiguration/previews`` units of E: image, ground
  /// truth and the ``previewModels()``' predictions), unless the count is 0 or the backend has
  /// nothing to draw. A complete file (written atomically) is kept when this `execute` ran no
  /// job: it was drawn from the same checkpoints.
  func writePreviews() throws {
    let target = path("predictions.png")
    try removeIfPresent(target + partialSuffix)
    guard configuration.previews > 0 else { return }
    if executedJobs.isEmpty && FileManager.default.fileExists(atPath: target) { return }
    let (models, level) = previewModels()
    let written = try backend.writePreviews(
      PreviewRequest(
        models: models, level: level, count: configuration.previews,
        output: target + partialSuffix))
    if written { try renameReplacing(target + partialSuffix, to: target) }
  }
}
