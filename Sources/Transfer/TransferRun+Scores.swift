import Foundation

/// The results of a run's completed jobs, by job id: evaluations and label scores.
struct RunResults {
  var evaluations: [String: EvaluationResult] = [:]
  var labelScores: [String: Evaluation] = [:]

  /// Adds a record's results; returns whether it had any.
  @discardableResult
  mutating func add(_ record: StepRecord, job: String) -> Bool {
    if let evaluation = record.evaluation { evaluations[job] = evaluation }
    if let score = record.labelScore { labelScores[job] = score }
    return record.evaluation != nil || record.labelScore != nil
  }
}

extension TransferRun {
  /// Runs an evaluation job: R and E for the model as trained and for its AdaBN copy, at every
  /// resolution of the backend, then the agreements with the teachers' and with M0's labels.
  func evaluate(_ evaluation: ModelEvaluation) throws -> EvaluationResult {
    var scores: [ModelScore] = []
    let models: [(BatchNormStatistics, ModelProvenance)] =
      [(.asTrained, evaluation.model)] + (evaluation.adapted.map { [(.adapted, $0)] } ?? [])
    for (statistics, model) in models {
      for set in [EvaluationSet.reference, .test] {
        for resolution in backend.scoreResolutions {
          let result = try backend.evaluate(
            EvaluationRequest(
              checkpoint: path(model.checkpoint), set: set, level: evaluation.level,
              resolution: resolution))
          scores.append(
            ModelScore(
              set: set, statistics: statistics, resolution: resolution, evaluation: result))
        }
      }
    }
    func agreement(_ labels: [LabelSetProvenance]) throws -> Double? {
      guard !labels.isEmpty else { return nil }
      return try backend.agreement(
        AgreementRequest(
          studentCheckpoint: path(evaluation.agreementModel.checkpoint),
          teacherLabels: labels.map(labelSet), level: evaluation.level))
    }
    return EvaluationResult(
      scores: scores, agreement: try agreement(evaluation.teacherLabels),
      agreementWithSource: try agreement(evaluation.sourceLabels))
  }

  /// The lines of `metrics.jsonl`: the baselines, then the report entries, in plan order.
  func metricsRecords(_ results: RunResults) -> [MetricsRecord] {
    func record(
      _ result: EvaluationResult, stage: String, level: LabelLevel, schedule: ScheduleKind?,
      generation: Int?, fold: Int?, model: String, labelsAtR: Double?
    ) -> MetricsRecord? {
      guard let reference = result.score(.reference), let test = result.score(.test) else {
        return nil
      }
      return MetricsRecord(
        stage: stage, level: level, schedule: schedule, generation: generation, fold: fold,
        model: model, metric: test.metric, resolution: test.resolution, atR: reference.score,
        atE: test.score, atRAdaBN: result.score(.reference, .adapted)?.score,
        atEAdaBN: result.score(.test, .adapted)?.score, labelsAtR: labelsAtR,
        agreement: result.agreement, agreementWithM0: result.agreementWithSource,
        perClass: .init(
          classes: test.classNames, reference: reference.perClass, test: test.perClass),
        scores: result.scores)
    }
    let baselines = plan.baselines.compactMap { entry -> MetricsRecord? in
      guard let result = results.evaluations[entry.evaluationJob] else { return nil }
      return record(
        result, stage: ResultsTable.baselineStage, level: entry.level, schedule: nil,
        generation: nil, fold: nil, model: entry.model, labelsAtR: nil)
    }
    return baselines
      + plan.entries.compactMap { entry in
        guard let result = results.evaluations[entry.evaluationJob] else { return nil }
        return record(
          result, stage: entry.stage, level: entry.level, schedule: entry.schedule,
          generation: entry.generation, fold: entry.fold, model: entry.model,
          labelsAtR: entry.labelScoreJob.flatMap { results.labelScores[$0]?.score })
      }
  }
}
