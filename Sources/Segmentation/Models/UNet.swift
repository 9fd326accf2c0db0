import Tensor

/// A U-Net encoder-decoder (Ronneberger et al., 2015) with batch norm and bilinear upsampling.
///
/// With the default configuration this is the project's reference network (REFERENCE_NET.md):
/// widths `[16, 32, 64, 128]`, 19 classes, 488,307 parameters. For `widths = [w1, ..., wD, wB]`:
/// ```
/// enc1 = DoubleConv(in -> w1)                       at H x W
/// enc(i) = maxpool 2x2, DoubleConv(w(i-1) -> wi)    at H / 2^(i-1)
/// bottleneck = maxpool 2x2, DoubleConv(wD -> wB)    at H / 2^D
/// dec(i) = bilinear up to enc(i)'s size, concat [up, enc(i)], DoubleConv(-> wi)
/// head = conv1x1 w1 -> classCount with bias
/// ```
/// Upsampling resizes to the skip connection's exact size (PyTorch `F.interpolate`,
/// `align_corners: false`), so any input size works; sizes divisible by `2^D` give exact x2 steps.
/// Parameter names: `enc1.conv1.conv.weight`, `enc1.conv1.norm.running_mean`, ..., `head.bias`.
public struct UNet: SegmentationModel, Equatable {
  /// The hyperparameters of a ``UNet``.
  public struct Configuration: Codable, Equatable, Sendable {
    /// Channels of the input images.
    public var inputChannels: Int
    /// Encoder widths, the last one being the bottleneck's; `widths.count - 1` poolings.
    public var widths: [Int]
    /// Output classes.
    public var classCount: Int

    /// Creates a configuration; the defaults give the reference network.
    public init(inputChannels: Int = 3, widths: [Int] = [16, 32, 64, 128], classCount: Int = 19) {
      self.inputChannels = inputChannels
      self.widths = widths
      self.classCount = classCount
    }
  }

  /// The configuration this network was built from.
  public let configuration: Configuration
  /// `enc1` ... `encD`.
  public var encoders: [DoubleConv]
  /// The lowest-resolution block.
  public var bottleneck: DoubleConv
  /// `dec1` ... `decD` (index `i` works at `encoders[i]`'s resolution).
  public var decoders: [DoubleConv]
  /// The 1x1 classifier.
  public var head: Conv2d

  public var architecture: ModelArchitecture { .unet(configuration: configuration) }

  /// Creates a He-initialised network.
  ///
  /// - Precondition: at least two widths, all positive, and `classCount > 0`.
  public init(
    _ configuration: Configuration = Configuration(), using generator: inout SeededGenerator
  ) {
    let widths = configuration.widths
    precondition(widths.count >= 2 && widths.allSatisfy { $0 > 0 }, "U-Net widths \(widths)")
    precondition(configuration.classCount > 0 && configuration.inputChannels > 0, "U-Net sizes")
    self.configuration = configuration
    let depth = widths.count - 1
    var encoders: [DoubleConv] = []
    var channels = configuration.inputChannels
    for i in 0..<depth {
      encoders.append(
        DoubleConv(inputChannels: channels, outputChannels: widths[i], using: &generator))
      channels = widths[i]
    }
    self.encoders = encoders
    bottleneck = DoubleConv(
      inputChannels: channels, outputChannels: widths[depth], using: &generator)
    var decoders: [DoubleConv] = []
    for i in 0..<depth {
      decoders.append(
        DoubleConv(
          inputChannels: widths[i + 1] + widths[i], outputChannels: widths[i], using: &generator))
    }
    self.decoders = decoders
    head = Conv2d(
      inputChannels: widths[0], outputChannels: configuration.classCount, kernelSize: 1,
      hasBias: true, using: &generator)
  }

  /// The training-forward state.
  public struct Cache: Sendable {
    var encoders: [DoubleConv.Cache] = []
    var poolArgmax: [[Int32]] = []  // pooling j reads encoder j's output
    var skipShapes: [[Int]] = []  // encoder i's output shape
    var bottleneck: DoubleConv.Cache?
    var decoders: [DoubleConv.Cache?] = []
    var upsampledFrom: [[Int]] = []  // decoder i upsampled a tensor of this shape
    var headInput = Tensor(repeating: 0, shape: [0])
  }

  public func callAsFunction(_ images: Tensor) -> Tensor {
    checkInput(images)
    var skips: [Tensor] = []
    var x = images
    for (i, encoder) in encoders.enumerated() {
      if i > 0 { x = maxPool2d(x, size: 2, stride: 2) }
      x = encoder(x)
      skips.append(x)
    }
    x = bottleneck(maxPool2d(x, size: 2, stride: 2))
    for i in decoders.indices.reversed() {
      let skip = skips[i]
      let up = resizeBilinearForward(x, height: skip.shape[1], width: skip.shape[2])
      x = decoders[i](concatenating: [up, skip])
    }
    return head(x)
  }

  public mutating func trainingForward(_ images: Tensor) -> (logits: Tensor, cache: Cache) {
    trainingForward(images, statistics: .local)
  }

  public mutating func trainingForward(
    _ images: Tensor, statistics scope: BatchStatisticsScope
  ) -> (logits: Tensor, cache: Cache) {
    checkInput(images)
    var cache = Cache()
    var skips: [Tensor] = []
    var x = images
    for i in encoders.indices {
      if i > 0 {
        let pooled = maxPool2dForward(x, size: 2, stride: 2)
        cache.poolArgmax.append(pooled.argmax)
        x = pooled.output
      }
      let out = encoders[i].trainingForward(x, statistics: scope)
      cache.encoders.append(out.cache)
      cache.skipShapes.append(out.output.shape)
      skips.append(out.output)
      x = out.output
    }
    let pooled = maxPool2dForward(x, size: 2, stride: 2)
    cache.poolArgmax.append(pooled.argmax)
    let bottom = bottleneck.trainingForward(pooled.output, statistics: scope)
    cache.bottleneck = bottom.cache
    x = bottom.output
    cache.decoders = Array(repeating: nil, count: decoders.count)
    cache.upsampledFrom = Array(repeating: [], count: decoders.count)
    for i in decoders.indices.reversed() {
      let skip = skips[i]
      cache.upsampledFrom[i] = x.shape
      let up = resizeBilinearForward(x, height: skip.shape[1], width: skip.shape[2])
      let out = decoders[i].trainingForward(concatenating: [up, skip], statistics: scope)
      cache.decoders[i] = out.cache
      x = out.output
    }
    cache.headInput = x
    return (head(x), cache)
  }

  public func backward(_ cache: Cache, logitsGradient: Tensor) -> [String: Tensor] {
    var gradients: [String: Tensor] = [:]
    let headGradient = head.backward(outputGradient: logitsGradient, input: cache.headInput)
    head.record(headGradient, prefix: "head", into: &gradients)
    guard var dx = headGradient.input else { return gradients }
    // Decoders, from the finest back to the coarsest.
    var skipGradients = [Tensor?](repeating: nil, count: encoders.count)
    for i in decoders.indices {
      guard let decoderCache = cache.decoders[i],
        let parts = decoders[i].backwardParts(
          outputGradient: dx, cache: decoderCache, prefix: "dec\(i + 1)", into: &gradients)
      else { preconditionFailure("incomplete U-Net cache") }
      let from = cache.upsampledFrom[i]
      skipGradients[i] = parts[1]
      dx = resizeBilinearBackward(
        outputGradient: parts[0], inputHeight: from[1], inputWidth: from[2])
    }
    guard let bottleneckCache = cache.bottleneck,
      let dPooled = bottleneck.backward(
        outputGradient: dx, cache: bottleneckCache, prefix: "bottleneck", into: &gradients)
    else { preconditionFailure("incomplete U-Net cache") }
    // Encoder i's output gradient: its skip gradient plus the pooled gradient routed back,
    // added in place into the skip gradient (taken out of the array, so not copied).
    let last = encoders.count - 1
    var dSkip = maxPool2dBackward(
      outputGradient: dPooled, argmax: cache.poolArgmax[last],
      inputShape: cache.skipShapes[last], adding: skipGradients[last].take())
    for i in encoders.indices.reversed() {
      let dInput = encoders[i].backward(
        outputGradient: dSkip, cache: cache.encoders[i], prefix: "enc\(i + 1)", into: &gradients,
        computeInputGradient: i > 0)
      if i > 0, let dInput {
        dSkip = maxPool2dBackward(
          outputGradient: dInput, argmax: cache.poolArgmax[i - 1],
          inputShape: cache.skipShapes[i - 1], adding: skipGradients[i - 1].take())
      }
    }
    return gradients
  }

  public mutating func visitParameters(
    prefix: String, _ body: (String, inout Tensor, ParameterRole) -> Void
  ) {
    for i in encoders.indices {
      encoders[i].visitParameters(prefix: joinName(prefix, "enc\(i + 1)"), body)
    }
    bottleneck.visitParameters(prefix: joinName(prefix, "bottleneck"), body)
    for i in decoders.indices.reversed() {
      decoders[i].visitParameters(prefix: joinName(prefix, "dec\(i + 1)"), body)
    }
    head.visitParameters(prefix: joinName(prefix, "head"), body)
  }

  private func checkInput(_ images: Tensor) {
    precondition(
      images.rank == 4 && images.shape[3] == configuration.inputChannels,
      "U-Net input must be [n, h, w, \(configuration.inputChannels)], got \(images.shape)")
    let minimum = 1 << (configuration.widths.count - 1)
    precondition(
      images.shape[1] >= minimum && images.shape[2] >= minimum,
      "U-Net input \(images.shape) is smaller than \(minimum) pixels")
  }
}
