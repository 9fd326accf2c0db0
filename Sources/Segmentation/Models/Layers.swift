import Tensor

/// Whether a named tensor of a model is learned by the optimizer or is a buffer (batch-norm
/// running statistics) that the forward pass maintains.
public enum ParameterRole: String, Sendable, Codable {
  case trainable
  case buffer
}

/// A value that holds named tensors and can visit them in a fixed order.
///
/// The visitor receives each tensor `inout`, so one method serves to read, write and list the
/// parameters. Names are dot-separated paths (`enc1.conv1.weight`).
public protocol ParameterContainer: Sendable {
  /// Calls `body` on every tensor, in a fixed order, with its full name under `prefix`.
  mutating func visitParameters(
    prefix: String, _ body: (_ name: String, _ tensor: inout Tensor, _ role: ParameterRole) -> Void)
}

/// Joins a name prefix and a component with a dot.
@inline(__always)
func joinName(_ prefix: String, _ name: String) -> String {
  prefix.isEmpty ? name : prefix + "." + name
}

/// A 2-D convolution layer over NHWC images, with weight `[r, s, inputChannels, outputChannels]`.
///
/// Initialised as PyTorch's `kaiming_normal_(mode: "fan_in", nonlinearity: "relu")` (He et al.,
/// 2015): weights ~ N(0, 2 / (r * s * inputChannels)); the bias (if any) starts at 0.
public struct Conv2d: ParameterContainer, Equatable {
  /// `[r, s, inputChannels, outputChannels]`.
  public var weight: Tensor
  /// `[outputChannels]`, or `nil` for a convolution without bias.
  public var bias: Tensor?
  /// The step between output pixels.
  public let stride: Int
  /// Zero padding on each side.
  public let padding: Int
  /// The spacing between kernel taps (atrous rate).
  public let dilation: Int

  /// Creates a He-initialised convolution.
  ///
  /// - Precondition: positive sizes.
  public init(
    inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
    dilation: Int = 1, hasBias: Bool = false, using generator: inout SeededGenerator
  ) {
    precondition(
      inputChannels > 0 && outputChannels > 0 && kernelSize > 0 && stride > 0 && dilation > 0,
      "invalid convolution sizes")
    let fanIn = Float(kernelSize * kernelSize * inputChannels)
    weight = Tensor.randomNormal(
      shape: [kernelSize, kernelSize, inputChannels, outputChannels],
      standardDeviation: (2 / fanIn).squareRoot(), using: &generator)
    bias = hasBias ? Tensor(repeating: 0, shape: [outputChannels]) : nil
    self.stride = stride
    self.padding = padding
    self.dilation = dilation
  }

  /// The number of output channels.
  public var outputChannels: Int { weight.shape[3] }

  /// Applies the convolution: `[n, h, w, inputChannels]` to `[n, outH, outW, outputChannels]`.
  public func callAsFunction(_ input: Tensor) -> Tensor { self(concatenating: [input]) }

  /// Applies the convolution to the channel concatenation of `inputs` without writing it out.
  public func callAsFunction(concatenating inputs: [Tensor]) -> Tensor {
    conv2dForward(
      concatenating: inputs, weight: weight, bias: bias, stride: stride, padding: padding,
      dilation: dilation)
  }

  /// The gradients of the convolution at `input` for the output gradient `outputGradient`.
  public func backward(outputGradient: Tensor, input: Tensor, computeInputGradient: Bool = true)
    -> (input: Tensor?, weight: Tensor, bias: Tensor?)
  {
    let g = backward(
      outputGradient: outputGradient, inputs: [input], computeInputGradient: computeInputGradient)
    return (g.inputs?[0], g.weight, g.bias)
  }

  /// The gradients of ``callAsFunction(concatenating:)``: one input gradient per part (`nil`
  /// unless `computeInputGradient`), the weight and the bias gradient.
  public func backward(
    outputGradient: Tensor, inputs: [Tensor], computeInputGradient: Bool = true
  ) -> (inputs: [Tensor]?, weight: Tensor, bias: Tensor?) {
    let g = conv2dBackward(
      outputGradient: outputGradient, concatenating: inputs, weight: weight, hasBias: bias != nil,
      stride: stride, padding: padding, dilation: dilation,
      computeInputGradient: computeInputGradient)
    return (computeInputGradient ? g.inputs : nil, g.weight, g.bias)
  }

  public mutating func visitParameters(
    prefix: String, _ body: (String, inout Tensor, ParameterRole) -> Void
  ) {
    body(joinName(prefix, "weight"), &weight, .trainable)
    if var b = bias {
      bias = nil
      body(joinName(prefix, "bias"), &b, .trainable)
      bias = b
    }
  }

  /// Adds this layer's gradients to `gradients` under `prefix`.
  func record(
    _ g: (inputs: [Tensor]?, weight: Tensor, bias: Tensor?), prefix: String,
    into gradients: inout [String: Tensor]
  ) {
    gradients[joinName(prefix, "weight")] = g.weight
    if let b = g.bias { gradients[joinName(prefix, "bias")] = b }
  }

  /// Adds this layer's gradients to `gradients` under `prefix`.
  func record(
    _ g: (input: Tensor?, weight: Tensor, bias: Tensor?), prefix: String,
    into gradients: inout [String: Tensor]
  ) {
    gradients[joinName(prefix, "weight")] = g.weight
    if let b = g.bias { gradients[joinName(prefix, "bias")] = b }
  }
}

/// Batch normalisation over the channels of NHWC activations (Ioffe and Szegedy, 2015), with
/// PyTorch's defaults and semantics: scale 1, offset 0, running mean 0 and variance 1, momentum
/// 0.1, epsilon 1e-5, the unbiased batch variance in the running estimate.
public struct BatchNorm: ParameterContainer, Equatable {
  /// `[c]`, learned (PyTorch's `weight`).
  public var scale: Tensor
  /// `[c]`, learned (PyTorch's `bias`).
  public var offset: Tensor
  /// `[c]`, a buffer.
  public var runningMean: Tensor
  /// `[c]`, a buffer.
  public var runningVariance: Tensor
  /// The weight of a new batch in the running statistics.
  public let momentum: Float
  /// Added to the variance.
  public let epsilon: Float

  /// Creates a batch-norm layer over `channels` channels.
  public init(channels: Int, momentum: Float = 0.1, epsilon: Float = 1e-5) {
    scale = Tensor(repeating: 1, shape: [channels])
    offset = Tensor(repeating: 0, shape: [channels])
    runningMean = Tensor(repeating: 0, shape: [channels])
    runningVariance = Tensor(repeating: 1, shape: [channels])
    self.momentum = momentum
    self.epsilon = epsilon
  }

  public mutating func visitParameters(
    prefix: String, _ body: (String, inout Tensor, ParameterRole) -> Void
  ) {
    body(joinName(prefix, "scale"), &scale, .trainable)
    body(joinName(prefix, "offset"), &offset, .trainable)
    body(joinName(prefix, "running_mean"), &runningMean, .buffer)
    body(joinName(prefix, "running_variance"), &runningVariance, .buffer)
  }
}

/// Convolution (no bias), batch norm and ReLU: the unit of the U-Net and DeepLab blocks.
public struct ConvBNReLU: ParameterContainer, Equatable {
  /// The convolution.
  public var conv: Conv2d
  /// The normalisation that follows it.
  public var norm: BatchNorm

  /// What the backward pass needs from one training forward pass.
  public struct Cache: Sendable {
    var inputs: [Tensor]
    var convOutput: Tensor
    var statistics: BatchNormStatistics
    var output: Tensor
  }

  /// Creates a unit with a He-initialised `kernelSize` convolution.
  public init(
    inputChannels: Int, outputChannels: Int, kernelSize: Int = 3, stride: Int = 1,
    padding: Int? = nil, dilation: Int = 1, using generator: inout SeededGenerator
  ) {
    conv = Conv2d(
      inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: kernelSize,
      stride: stride, padding: padding ?? dilation * (kernelSize - 1) / 2, dilation: dilation,
      using: &generator)
    norm = BatchNorm(channels: outputChannels)
  }

  /// Inference: convolution, then batch norm with the running statistics, then ReLU.
  public func callAsFunction(_ input: Tensor) -> Tensor { self(concatenating: [input]) }

  /// Inference on the channel concatenation of `inputs`: the batch norm (running statistics)
  /// folded into the convolution, `max(0, conv(x, W * a) + b)` with, per output channel,
  /// `a = scale / sqrt(runningVariance + epsilon)` and `b = offset - runningMean * a`, in one
  /// kernel (no batch-norm pass, no intermediate tensor).
  public func callAsFunction(concatenating inputs: [Tensor]) -> Tensor {
    precondition(conv.bias == nil, "the convolution of a ConvBNReLU has no bias")
    let k = conv.outputChannels
    var a = [Float](repeating: 0, count: k)
    var b = [Float](repeating: 0, count: k)
    for j in 0..<k {
      a[j] = norm.scale.scalars[j] / (norm.runningVariance.scalars[j] + norm.epsilon).squareRoot()
      b[j] = norm.offset.scalars[j] - norm.runningMean.scalars[j] * a[j]
    }
    var folded = conv.weight
    folded.scalars.withUnsafeMutableBufferPointer { w in
      // [r, s, c, k]: rows of k output channels.
      for row in 0..<(w.count / k) {
        for j in 0..<k { w[row * k + j] *= a[j] }
      }
    }
    return conv2dForward(
      concatenating: inputs, weight: folded, bias: Tensor(shape: [k], scalars: b),
      stride: conv.stride, padding: conv.padding, dilation: conv.dilation, relu: true)
  }

  /// Training: batch statistics (over the rows of `scope`), running statistics updated;
  /// returns the output and the cache.
  public mutating func trainingForward(
    _ input: Tensor, statistics scope: BatchStatisticsScope = .local
  ) -> (output: Tensor, cache: Cache) {
    trainingForward(concatenating: [input], statistics: scope)
  }

  /// Training on the channel concatenation of `inputs` (which the cache keeps as parts).
  public mutating func trainingForward(
    concatenating inputs: [Tensor], statistics scope: BatchStatisticsScope = .local
  ) -> (output: Tensor, cache: Cache) {
    precondition(conv.bias == nil, "the convolution of a ConvBNReLU has no bias")
    // The kernel gathers the batch statistics as it stores the convolution's output, around the
    // running mean (which keeps the sums from cancelling).
    let (convOutput, sums, squares) = conv2dForwardWithMoments(
      concatenating: inputs, weight: conv.weight, stride: conv.stride, padding: conv.padding,
      dilation: conv.dilation, shift: norm.runningMean)
    let (output, statistics) = batchNormTrainingForward(
      convOutput, sums: sums, squares: squares, shift: norm.runningMean, scale: norm.scale,
      offset: norm.offset, epsilon: norm.epsilon, relu: true, scope: scope)
    updateRunningStatistics(
      runningMean: &norm.runningMean, runningVariance: &norm.runningVariance,
      statistics: statistics, count: statistics.count, momentum: norm.momentum,
      epsilon: norm.epsilon)
    return (
      output, Cache(inputs: inputs, convOutput: convOutput, statistics: statistics, output: output)
    )
  }

  /// Back-propagates `outputGradient`; records the parameter gradients under `prefix` and returns
  /// the input gradient (`nil` if `computeInputGradient` is false).
  public func backward(
    outputGradient: Tensor, cache: Cache, prefix: String, into gradients: inout [String: Tensor],
    computeInputGradient: Bool = true
  ) -> Tensor? {
    backwardParts(
      outputGradient: outputGradient, cache: cache, prefix: prefix, into: &gradients,
      computeInputGradient: computeInputGradient)?[0]
  }

  /// ``backward(outputGradient:cache:prefix:into:computeInputGradient:)`` with one input
  /// gradient per part of the input.
  public func backwardParts(
    outputGradient: Tensor, cache: Cache, prefix: String, into gradients: inout [String: Tensor],
    computeInputGradient: Bool = true
  ) -> [Tensor]? {
    let bn = batchNormReLUBackward(
      outputGradient: outputGradient, output: cache.output, input: cache.convOutput,
      scale: norm.scale, statistics: cache.statistics)
    gradients[joinName(prefix, "norm.scale")] = bn.scale
    gradients[joinName(prefix, "norm.offset")] = bn.offset
    let g = conv.backward(
      outputGradient: bn.input, inputs: cache.inputs, computeInputGradient: computeInputGradient)
    conv.record(g, prefix: joinName(prefix, "conv"), into: &gradients)
    return g.inputs
  }

  public mutating func visitParameters(
    prefix: String, _ body: (String, inout Tensor, ParameterRole) -> Void
  ) {
    conv.visitParameters(prefix: joinName(prefix, "conv"), body)
    norm.visitParameters(prefix: joinName(prefix, "norm"), body)
  }
}

/// Two ``ConvBNReLU`` units in sequence (the U-Net block).
public struct DoubleConv: ParameterContainer, Equatable {
  /// The first unit (changes the channel count).
  public var first: ConvBNReLU
  /// The second unit.
  public var second: ConvBNReLU

  /// The caches of both units.
  public struct Cache: Sendable {
    var first: ConvBNReLU.Cache
    var second: ConvBNReLU.Cache
  }

  /// Creates a block of two 3x3 units.
  public init(
    inputChannels: Int, outputChannels: Int, dilation: Int = 1,
    using generator: inout SeededGenerator
  ) {
    first = ConvBNReLU(
      inputChannels: inputChannels, outputChannels: outputChannels, dilation: dilation,
      using: &generator)
    second = ConvBNReLU(
      inputChannels: outputChannels, outputChannels: outputChannels, dilation: dilation,
      using: &generator)
  }

  /// Inference.
  public func callAsFunction(_ input: Tensor) -> Tensor { second(first(input)) }

  /// Inference on the channel concatenation of `inputs`.
  public func callAsFunction(concatenating inputs: [Tensor]) -> Tensor {
    second(first(concatenating: inputs))
  }

  /// Training forward (batch statistics over the rows of `scope`).
  public mutating func trainingForward(
    _ input: Tensor, statistics scope: BatchStatisticsScope = .local
  ) -> (output: Tensor, cache: Cache) {
    trainingForward(concatenating: [input], statistics: scope)
  }

  /// Training forward on the channel concatenation of `inputs`.
  public mutating func trainingForward(
    concatenating inputs: [Tensor], statistics scope: BatchStatisticsScope = .local
  ) -> (output: Tensor, cache: Cache) {
    let a = first.trainingForward(concatenating: inputs, statistics: scope)
    let b = second.trainingForward(a.output, statistics: scope)
    return (b.output, Cache(first: a.cache, second: b.cache))
  }

  /// Back-propagation; records gradients under `prefix`.
  public func backward(
    outputGradient: Tensor, cache: Cache, prefix: String, into gradients: inout [String: Tensor],
    computeInputGradient: Bool = true
  ) -> Tensor? {
    backwardParts(
      outputGradient: outputGradient, cache: cache, prefix: prefix, into: &gradients,
      computeInputGradient: computeInputGradient)?[0]
  }

  /// Back-propagation with one input gradient per part of the input.
  public func backwardParts(
    outputGradient: Tensor, cache: Cache, prefix: String, into gradients: inout [String: Tensor],
    computeInputGradient: Bool = true
  ) -> [Tensor]? {
    guard
      let middle = second.backward(
        outputGradient: outputGradient, cache: cache.second, prefix: joinName(prefix, "conv2"),
        into: &gradients)
    else { return nil }
    return first.backwardParts(
      outputGradient: middle, cache: cache.first, prefix: joinName(prefix, "conv1"),
      into: &gradients, computeInputGradient: computeInputGradient)
  }

  public mutating func visitParameters(
    prefix: String, _ body: (String, inout Tensor, ParameterRole) -> Void
  ) {
    first.visitParameters(prefix: joinName(prefix, "conv1"), body)
    second.visitParameters(prefix: joinName(prefix, "conv2"), body)
  }
}
