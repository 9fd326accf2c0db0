import Foundation
import Tensor

/// One batch for a step of ``Trainer/train(until:imagesPerStep:next:progress:afterStep:)``.
public struct TrainingBatch: Sendable {
  public var batch: Batch
  /// The loss of each run of images; nil for the trainer's configured loss.
  public var groups: [LossGroup]?

  public init(_ batch: Batch, groups: [LossGroup]? = nil) {
    self.batch = batch
    self.groups = groups
  }
}

/// What a call of ``Trainer/train(until:imagesPerStep:next:progress:afterStep:)`` did.
public struct TrainingLoopResult: Sendable, Equatable {
  /// Steps taken by this call.
  public var steps: Int
  /// The result of the last step taken (nil when none was).
  public var last: TrainingStepResult?
  /// Labeled pixels per loss group, summed over the steps (group positions as in the batches).
  public var countedPixels: [Int]
  /// Seconds spent.
  public var seconds: Double
}

extension Trainer {
  /// The training loop: takes steps until ``step`` reaches `totalSteps`.
  ///
  /// Each step trains the batch `next` returns for it (validated, with divergence and gradient
  /// checks: ``trainStep(_:groups:)``), reports a ``TrainingEvent/step(_:)`` with the speed and
  /// the time left, then calls `afterStep` (checkpoints, validation). Every training of the
  /// package goes through here: `train`, the source models and students of a transfer, the view
  /// networks of the volume backend.
  /// - Parameters:
  ///   - imagesPerStep: the batch size, for the images-per-second figure.
  ///   - next: the batch of a step (0-based).
  ///   - progress: receives the step events; an error it throws stops the loop.
  ///   - afterStep: called after each step with the trainer and the step's result.
  /// - Throws: what `next`, `progress`, `afterStep` or ``trainStep(_:groups:)`` throw.
  @discardableResult
  public mutating func train(
    until totalSteps: Int, imagesPerStep: Int,
    next: (_ step: Int) throws -> TrainingBatch,
    progress: (TrainingEvent) throws -> Void = { _ in },
    afterStep: (inout Trainer, TrainingStepResult) throws -> Void = { _, _ in }
  ) throws -> TrainingLoopResult {
    let start = Date()
    let firstStep = step
    var result = TrainingLoopResult(steps: 0, last: nil, countedPixels: [], seconds: 0)
    while step < totalSteps {
      let input = try next(step)
      let stepResult = try trainStep(input.batch, groups: input.groups)
      result.steps += 1
      result.last = stepResult
      for (i, count) in stepResult.countedPixels.enumerated() {
        if i < result.countedPixels.count {
          result.countedPixels[i] += count
        } else {
          result.countedPixels.append(count)
        }
      }
      let elapsed = Date().timeIntervalSince(start)
      let done = step - firstStep
      let perStep = elapsed / Double(max(1, done))
      try progress(
        .step(
          TrainingProgress(
            step: step, totalSteps: totalSteps, loss: stepResult.loss,
            learningRate: stepResult.learningRate, gradientNorm: stepResult.gradientNorm,
            labeledPixels: stepResult.countedPixels.reduce(0, +),
            imagesPerSecond: elapsed > 0 ? Double(done * imagesPerStep) / elapsed : 0,
            secondsPerStep: perStep, secondsRemaining: perStep * Double(totalSteps - step))))
      try afterStep(&self, stepResult)
    }
    result.seconds = Date().timeIntervalSince(start)
    return result
  }
}
