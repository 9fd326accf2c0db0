import Tensor

/// A segmentation network with a hand-written backward pass.
///
/// A model maps images `[n, h, w, inputChannels]` to logits `[n, h, w, classCount]` at the input
/// resolution. It is a value: training mutates the owner's `var model` (running statistics in
/// ``trainingForward(_:)``, parameters through ``parameters``).
public protocol SegmentationModel: ParameterContainer {
  /// What ``backward(_:logitsGradient:)`` needs from a training forward pass.
  associatedtype Cache: Sendable

  /// The description that rebuilds this network (saved in checkpoints).
  var architecture: ModelArchitecture { get }

  /// Inference: logits from the running batch-norm statistics. Does not change the model.
  func callAsFunction(_ images: Tensor) -> Tensor

  /// Training forward pass: batch statistics, running statistics updated.
  mutating func trainingForward(_ images: Tensor) -> (logits: Tensor, cache: Cache)

  /// Training forward pass with batch statistics over the rows of `scope` (every replica of a
  /// data-parallel step); the backward pass of its cache sums over the same scope.
  mutating func trainingForward(_ images: Tensor, statistics scope: BatchStatisticsScope)
    -> (logits: Tensor, cache: Cache)

  /// The gradients of every trainable parameter, keyed by name, for the logits gradient of the
  /// forward pass that produced `cache`.
  func backward(_ cache: Cache, logitsGradient: Tensor) -> [String: Tensor]
}

extension SegmentationModel {
  /// The default, for models without batch norm: ``trainingForward(_:)`` (no statistics to
  /// share).
  public mutating func trainingForward(
    _ images: Tensor, statistics scope: BatchStatisticsScope
  ) -> (logits: Tensor, cache: Cache) {
    trainingForward(images)
  }

  /// The number of output classes.
  public var classCount: Int { architecture.classCount }

  /// Runs the network in training mode (`training: true`, returning the cache) or inference mode.
  public mutating func forward(_ images: Tensor, training: Bool) -> (logits: Tensor, cache: Cache?)
  {
    if training {
      let (logits, cache) = trainingForward(images)
      return (logits, cache)
    }
    return (self(images), nil)
  }

  /// Every named tensor (trainable parameters and buffers), in the model's fixed order.
  public var parameterNames: [String] { namedTensors.map(\.name) }

  /// The names of the tensors the optimizer updates, in order.
  public var trainableParameterNames: [String] {
    namedTensors.filter { $0.role == .trainable }.map(\.name)
  }

  /// The number of trainable scalars.
  public var trainableScalarCount: Int {
    namedTensors.filter { $0.role == .trainable }.reduce(0) { $0 + $1.tensor.count }
  }

  /// The named tensors in order, with their roles.
  public var namedTensors: [(name: String, tensor: Tensor, role: ParameterRole)] {
    var copy = self
    var result: [(name: String, tensor: Tensor, role: ParameterRole)] = []
    copy.visitParameters(prefix: "") { name, tensor, role in result.append((name, tensor, role)) }
    return result
  }

  /// All named tensors (trainable parameters and buffers).
  ///
  /// Setting replaces every tensor whose name is a key; names that are not keys keep their value.
  /// - Precondition (set): each given tensor has the shape of the tensor it replaces.
  public var parameters: [String: Tensor] {
    get {
      var dictionary: [String: Tensor] = [:]
      for entry in namedTensors { dictionary[entry.name] = entry.tensor }
      return dictionary
    }
    set {
      visitParameters(prefix: "") { name, tensor, _ in
        guard let replacement = newValue[name] else { return }
        precondition(
          replacement.shape == tensor.shape,
          "parameter '\(name)' has shape \(tensor.shape), not \(replacement.shape)")
        tensor = replacement
      }
    }
  }
}

/// The architecture of a network, enough to rebuild it before loading its weights.
public enum ModelArchitecture: Codable, Equatable, Sendable {
  /// A ``UNet``.
  case unet(configuration: UNet.Configuration)
  /// A ``DeepLab``.
  case deepLab(configuration: DeepLab.Configuration)

  /// The number of output classes.
  public var classCount: Int {
    switch self {
    case .unet(let c): c.classCount
    case .deepLab(let c): c.classCount
    }
  }

  /// A freshly initialised network of this architecture.
  public func makeModel(using generator: inout SeededGenerator) -> any SegmentationModel {
    switch self {
    case .unet(let c): UNet(c, using: &generator)
    case .deepLab(let c): DeepLab(c, using: &generator)
    }
  }
}

/// How convolution weights are drawn when a network is created.
public enum WeightInitialization: String, Codable, Sendable, CaseIterable {
  /// He et al. (2015), PyTorch's `kaiming_normal_(mode="fan_in", nonlinearity="relu")`:
  /// weights ~ N(0, 2 / fanIn), biases 0. What the constructors do.
  case he
  /// PyTorch's default for `nn.Conv2d` (`kaiming_uniform_(a=sqrt(5))`): weights and biases
  /// ~ U(-1/sqrt(fanIn), 1/sqrt(fanIn)). Weights about 2.4 times smaller than He's, so layers
  /// followed by batch norm see a larger effective learning rate.
  case pytorch
}

extension SegmentationModel {
  /// Redraws every convolution (each rank-4 `weight` `[r, s, in, out]` and its `bias`) with
  /// `scheme`, in parameter order; batch-norm parameters and buffers are left as they are.
  public mutating func initialize(_ scheme: WeightInitialization, using generator: inout SeededGenerator)
  {
    let weights = namedTensors.filter { $0.name.hasSuffix("weight") && $0.tensor.rank == 4 }
    let all = parameters
    var replacements: [String: Tensor] = [:]
    for (name, tensor, _) in weights {
      let shape = tensor.shape
      let fanIn = Float(shape[0] * shape[1] * shape[2])
      let prefix = String(name.dropLast("weight".count))
      let bias = all[prefix + "bias"]
      switch scheme {
      case .he:
        replacements[name] = Tensor.randomNormal(
          shape: shape, standardDeviation: (2 / fanIn).squareRoot(), using: &generator)
        if let bias { replacements[prefix + "bias"] = Tensor(repeating: 0, shape: bias.shape) }
      case .pytorch:
        let bound = 1 / fanIn.squareRoot()
        replacements[name] = Tensor.randomUniform(
          shape: shape, lower: -bound, upper: bound, using: &generator)
        if let bias {
          replacements[prefix + "bias"] = Tensor.randomUniform(
            shape: bias.shape, lower: -bound, upper: bound, using: &generator)
        }
      }
    }
    parameters = replacements
  }
}
