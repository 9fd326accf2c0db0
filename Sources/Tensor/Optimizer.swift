#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// An optimizer that updates named parameters from named gradients.
///
/// Parameters and gradients are keyed by the model's parameter names; the optimizer keeps its state
/// (velocities, moments) under the same names, so that the state can be saved in a checkpoint.
public protocol Optimizer: Sendable, Codable {
  /// Applies one update to every parameter that has a gradient, with the given learning rate.
  ///
  /// Parameters without a gradient (e.g. batch-norm running statistics) are left unchanged.
  /// - Precondition: every gradient names a parameter of the same shape.
  mutating func update(
    _ parameters: inout [String: Tensor], gradients: [String: Tensor], learningRate: Float)
}

/// Removes `name` from `parameters` (so that its storage is uniquely referenced), checks it against
/// `gradient`, and returns it.
private func takeParameter(
  _ name: String, from parameters: inout [String: Tensor], matching gradient: Tensor
) -> Tensor {
  guard let parameter = parameters.removeValue(forKey: name) else {
    preconditionFailure("gradient for unknown parameter '\(name)'")
  }
  precondition(
    parameter.shape == gradient.shape,
    "parameter '\(name)' has shape \(parameter.shape), its gradient \(gradient.shape)")
  return parameter
}

/// Stochastic gradient descent with momentum and L2 weight decay, with PyTorch's semantics
/// (`torch.optim.SGD`, dampening 0):
/// ```
/// g = gradient + weightDecay * p
/// v = momentum * v + g          (v = g at the first step)
/// p = p - learningRate * v      (nesterov: p = p - learningRate * (g + momentum * v))
/// ```
public struct SGD: Optimizer, Equatable {
  /// The momentum factor (0 disables the velocity).
  public var momentum: Float
  /// The L2 penalty added to every gradient.
  public var weightDecay: Float
  /// Whether to use Nesterov momentum.
  public var nesterov: Bool
  /// The velocity of each parameter, keyed by parameter name.
  public var velocity: [String: Tensor] = [:]

  /// Creates an optimizer with empty state.
  public init(momentum: Float = 0.9, weightDecay: Float = 0, nesterov: Bool = false) {
    self.momentum = momentum
    self.weightDecay = weightDecay
    self.nesterov = nesterov
  }

  public mutating func update(
    _ parameters: inout [String: Tensor], gradients: [String: Tensor], learningRate: Float
  ) {
    let (m, decay, lr) = (momentum, weightDecay, learningRate)
    for (name, gradient) in gradients {
      var parameter = takeParameter(name, from: &parameters, matching: gradient)
      // Loops over buffer pointers (no bounds checks), which the compiler vectorizes.
      if m == 0 {
        parameter.scalars.withUnsafeMutableBufferPointer { p in
          gradient.scalars.withUnsafeBufferPointer { d in
            for i in p.indices { p[i] -= lr * (d[i] + decay * p[i]) }
          }
        }
      } else {
        let isFirst = velocity[name] == nil
        var v = velocity.removeValue(forKey: name) ?? Tensor(repeating: 0, shape: gradient.shape)
        precondition(v.shape == gradient.shape, "velocity of '\(name)' has shape \(v.shape)")
        let isNesterov = nesterov
        parameter.scalars.withUnsafeMutableBufferPointer { p in
          v.scalars.withUnsafeMutableBufferPointer { vb in
            gradient.scalars.withUnsafeBufferPointer { d in
              for i in p.indices {
                let g = d[i] + decay * p[i]
                let newV = isFirst ? g : m * vb[i] + g
                vb[i] = newV
                p[i] -= lr * (isNesterov ? g + m * newV : newV)
              }
            }
          }
        }
        velocity[name] = v
      }
      parameters[name] = parameter
    }
  }
}

/// The "poly" learning-rate schedule of DeepLab and ATSO:
/// ```
/// learningRate(step) = baseLearningRate * (1 - step / totalSteps) ^ power
/// ```
/// for `step` in `0..<totalSteps`; 0 from `totalSteps` on.
public struct PolySchedule: Sendable, Codable, Equatable {
  /// The learning rate at step 0.
  public var baseLearningRate: Float
  /// The number of steps after which the rate reaches 0.
  public var totalSteps: Int
  /// The exponent (0.9 in DeepLab).
  public var power: Float

  /// Creates a schedule.
  ///
  /// - Precondition: `totalSteps > 0`.
  public init(baseLearningRate: Float, totalSteps: Int, power: Float = 0.9) {
    precondition(totalSteps > 0, "a poly schedule needs totalSteps > 0, got \(totalSteps)")
    self.baseLearningRate = baseLearningRate
    self.totalSteps = totalSteps
    self.power = power
  }

  /// The learning rate at `step` (0-based).
  public func learningRate(atStep step: Int) -> Float {
    guard step < totalSteps else { return 0 }
    let fraction = 1 - Double(max(0, step)) / Double(totalSteps)
    return baseLearningRate * Float(pow(fraction, Double(power)))
  }
}

/// Adam (Kingma and Ba, 2015) with PyTorch's semantics (`torch.optim.Adam`, L2 weight decay added
/// to the gradient, bias-corrected moments, one step counter for all parameters):
/// ```
/// g = gradient + weightDecay * p;  t = t + 1
/// m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
/// p = p - learningRate * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)
/// ```
public struct Adam: Optimizer, Equatable {
  /// The decay rate of the first moment.
  public var beta1: Float
  /// The decay rate of the second moment.
  public var beta2: Float
  /// Added to the denominator for numerical stability.
  public var epsilon: Float
  /// The L2 penalty added to every gradient.
  public var weightDecay: Float
  /// The number of updates applied so far.
  public var step: Int = 0
  /// The first moments, keyed by parameter name.
  public var firstMoment: [String: Tensor] = [:]
  /// The second moments, keyed by parameter name.
  public var secondMoment: [String: Tensor] = [:]

  /// Creates an optimizer with empty state.
  public init(
    beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0
  ) {
    self.beta1 = beta1
    self.beta2 = beta2
    self.epsilon = epsilon
    self.weightDecay = weightDecay
  }

  public mutating func update(
    _ parameters: inout [String: Tensor], gradients: [String: Tensor], learningRate: Float
  ) {
    step += 1
    let correction1 = 1 - pow(Double(beta1), Double(step))
    let correction2 = 1 - pow(Double(beta2), Double(step))
    let stepSize = Float(Double(learningRate) / correction1)
    let root2 = Float(correction2.squareRoot())
    let (b1, b2, eps, decay) = (beta1, beta2, epsilon, weightDecay)
    for (name, gradient) in gradients {
      var parameter = takeParameter(name, from: &parameters, matching: gradient)
      var m = firstMoment.removeValue(forKey: name) ?? Tensor(repeating: 0, shape: gradient.shape)
      var v = secondMoment.removeValue(forKey: name) ?? Tensor(repeating: 0, shape: gradient.shape)
      precondition(
        m.shape == gradient.shape && v.shape == gradient.shape,
        "moments of '\(name)' have the wrong shape")
      for i in parameter.scalars.indices {
        let g = gradient.scalars[i] + decay * parameter.scalars[i]
        m.scalars[i] = b1 * m.scalars[i] + (1 - b1) * g
        v.scalars[i] = b2 * v.scalars[i] + (1 - b2) * g * g
        // PyTorch: denom = sqrt(v) / sqrt(correction2) + eps; p -= (lr / correction1) * m / denom.
        parameter.scalars[i] -= stepSize * m.scalars[i] / (v.scalars[i].squareRoot() / root2 + eps)
      }
      firstMoment[name] = m
      secondMoment[name] = v
      parameters[name] = parameter
    }
  }
}
