import Tensor

/// The optimizers a ``Trainer`` can use (`train --optimizer sgd|adam`).
public enum OptimizerKind: String, Sendable, Codable, CaseIterable {
  /// SGD with momentum and L2 weight decay (``SGD``).
  case sgd
  /// Adam with L2 weight decay (``Adam``, betas 0.9 and 0.999, epsilon 1e-8).
  case adam
}

/// A ``Trainer``'s optimizer and its state.
///
/// In checkpoints the hyperparameters (and Adam's step counter) go into the JSON description and
/// every state tensor is stored beside the weights under a name starting with
/// ``statePrefix``: SGD velocities as `optimizer.velocity.<parameter>` (the names of checkpoints
/// written before Adam was supported), Adam moments as `optimizer.adam.first.<parameter>` and
/// `optimizer.adam.second.<parameter>`.
public enum TrainingOptimizer: Optimizer, Equatable {
  case sgd(SGD)
  case adam(Adam)

  /// A fresh optimizer of `kind`; `momentum` applies to SGD only.
  public init(_ kind: OptimizerKind, momentum: Float, weightDecay: Float) {
    switch kind {
    case .sgd: self = .sgd(SGD(momentum: momentum, weightDecay: weightDecay))
    case .adam: self = .adam(Adam(weightDecay: weightDecay))
    }
  }

  /// The kind of optimizer.
  public var kind: OptimizerKind {
    switch self {
    case .sgd: .sgd
    case .adam: .adam
    }
  }

  public mutating func update(
    _ parameters: inout [String: Tensor], gradients: [String: Tensor], learningRate: Float
  ) {
    switch self {
    case .sgd(var sgd):
      sgd.update(&parameters, gradients: gradients, learningRate: learningRate)
      self = .sgd(sgd)
    case .adam(var adam):
      adam.update(&parameters, gradients: gradients, learningRate: learningRate)
      self = .adam(adam)
    }
  }

  /// The prefix of every optimizer state tensor in a checkpoint.
  public static let statePrefix = "optimizer."
  static let velocityPrefix = "optimizer.velocity."
  static let firstMomentPrefix = "optimizer.adam.first."
  static let secondMomentPrefix = "optimizer.adam.second."

  /// The state tensors under their checkpoint names.
  public var stateTensors: [String: Tensor] {
    func prefixed(_ tensors: [String: Tensor], _ prefix: String) -> [String: Tensor] {
      Dictionary(uniqueKeysWithValues: tensors.map { (prefix + $0.key, $0.value) })
    }
    switch self {
    case .sgd(let sgd): return prefixed(sgd.velocity, Self.velocityPrefix)
    case .adam(let adam):
      return prefixed(adam.firstMoment, Self.firstMomentPrefix)
        .merging(prefixed(adam.secondMoment, Self.secondMomentPrefix)) { a, _ in a }
    }
  }

  /// The optimizer without its state tensors (what the checkpoint's description holds).
  public var withoutStateTensors: TrainingOptimizer {
    switch self {
    case .sgd(var sgd):
      sgd.velocity = [:]
      return .sgd(sgd)
    case .adam(var adam):
      adam.firstMoment = [:]
      adam.secondMoment = [:]
      return .adam(adam)
    }
  }

  /// Restores the state tensors found in `tensors` under their checkpoint names.
  public mutating func restoreState(from tensors: [String: Tensor]) {
    func take(_ prefix: String) -> [String: Tensor] {
      var found: [String: Tensor] = [:]
      for (name, tensor) in tensors where name.hasPrefix(prefix) {
        found[String(name.dropFirst(prefix.count))] = tensor
      }
      return found
    }
    switch self {
    case .sgd(var sgd):
      sgd.velocity = take(Self.velocityPrefix)
      self = .sgd(sgd)
    case .adam(var adam):
      adam.firstMoment = take(Self.firstMomentPrefix)
      adam.secondMoment = take(Self.secondMomentPrefix)
      self = .adam(adam)
    }
  }

  enum CodingKeys: String, CodingKey { case adam }

  /// Decodes `{"adam": {...}}`, or the plain SGD object of earlier checkpoints.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    if let adam = try container.decodeIfPresent(Adam.self, forKey: .adam) {
      self = .adam(adam)
    } else {
      self = .sgd(try SGD(from: decoder))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    switch self {
    case .sgd(let sgd): try sgd.encode(to: encoder)
    case .adam(let adam):
      var container = encoder.container(keyedBy: CodingKeys.self)
      try container.encode(adam, forKey: .adam)
    }
  }
}
