import Tensor

/// A small DeepLab-v3-style network (Chen et al., 2017): a strided backbone with dilated
/// convolutions at output stride 8, an atrous spatial pyramid pooling (ASPP) head with image-level
/// pooling, and bilinear upsampling of the logits to the input size.
///
/// For `widths = [w1, w2, w3, w4]` and ASPP width `a`:
/// ```
/// stage1 = ConvBNReLU 3x3 stride 2 (in -> w1), ConvBNReLU 3x3 (w1 -> w1)      at H/2
/// stage2 = ConvBNReLU 3x3 stride 2 (w1 -> w2), ConvBNReLU 3x3 (w2 -> w2)      at H/4
/// stage3 = ConvBNReLU 3x3 stride 2 (w2 -> w3), ConvBNReLU 3x3 (w3 -> w3)      at H/8
/// stage4 = DoubleConv dilation 2 (w3 -> w4)                                    at H/8
/// aspp   = [ConvBNReLU 1x1 (w4 -> a), ConvBNReLU 3x3 dilation r (w4 -> a) for r in rates,
///           image pooling: global average, conv1x1 with bias (w4 -> a), ReLU, broadcast]
/// project = concat, ConvBNReLU 1x1 (-> a);  classifier = conv1x1 with bias (a -> classes)
/// logits = bilinear resize to H x W (align_corners false)
/// ```
/// The image-pooling branch has a bias and no batch norm, which would be degenerate on `n`
/// values of a 1x1 map. There is no dropout.
public struct DeepLab: SegmentationModel, Equatable {
  /// The hyperparameters of a ``DeepLab``.
  public struct Configuration: Codable, Equatable, Sendable {
    /// Channels of the input images.
    public var inputChannels: Int
    /// The four backbone widths.
    public var widths: [Int]
    /// The width of every ASPP branch and of the projection.
    public var asppChannels: Int
    /// The dilation rates of the 3x3 ASPP branches (at output stride 8).
    public var asppRates: [Int]
    /// Output classes.
    public var classCount: Int

    /// Creates a configuration.
    public init(
      inputChannels: Int = 3, widths: [Int] = [16, 32, 64, 128], asppChannels: Int = 64,
      asppRates: [Int] = [2, 4, 6], classCount: Int = 19
    ) {
      self.inputChannels = inputChannels
      self.widths = widths
      self.asppChannels = asppChannels
      self.asppRates = asppRates
      self.classCount = classCount
    }
  }

  /// The configuration this network was built from.
  public let configuration: Configuration
  /// The six strided units of stages 1-3, in order.
  public var stem: [ConvBNReLU]
  /// The dilated stage 4.
  public var stage4: DoubleConv
  /// The 1x1 ASPP branch.
  public var asppPointwise: ConvBNReLU
  /// The dilated 3x3 ASPP branches, one per rate.
  public var asppAtrous: [ConvBNReLU]
  /// The image-pooling branch's 1x1 convolution (with bias).
  public var asppPooling: Conv2d
  /// The 1x1 projection of the concatenated branches.
  public var projection: ConvBNReLU
  /// The 1x1 classifier (with bias).
  public var classifier: Conv2d

  public var architecture: ModelArchitecture { .deepLab(configuration: configuration) }

  /// Creates a He-initialised network.
  ///
  /// - Precondition: four positive widths, positive rates, `classCount > 0`.
  public init(
    _ configuration: Configuration = Configuration(), using generator: inout SeededGenerator
  ) {
    let w = configuration.widths
    precondition(w.count == 4 && w.allSatisfy { $0 > 0 }, "DeepLab needs four widths, got \(w)")
    precondition(
      configuration.asppRates.allSatisfy { $0 > 0 }, "ASPP rates \(configuration.asppRates)")
    precondition(configuration.classCount > 0 && configuration.asppChannels > 0, "DeepLab sizes")
    self.configuration = configuration
    var stem: [ConvBNReLU] = []
    var channels = configuration.inputChannels
    for width in w.prefix(3) {
      stem.append(
        ConvBNReLU(inputChannels: channels, outputChannels: width, stride: 2, using: &generator))
      stem.append(ConvBNReLU(inputChannels: width, outputChannels: width, using: &generator))
      channels = width
    }
    self.stem = stem
    stage4 = DoubleConv(inputChannels: w[2], outputChannels: w[3], dilation: 2, using: &generator)
    let a = configuration.asppChannels
    asppPointwise = ConvBNReLU(
      inputChannels: w[3], outputChannels: a, kernelSize: 1, using: &generator)
    asppAtrous = configuration.asppRates.map {
      ConvBNReLU(inputChannels: w[3], outputChannels: a, dilation: $0, using: &generator)
    }
    asppPooling = Conv2d(
      inputChannels: w[3], outputChannels: a, kernelSize: 1, hasBias: true, using: &generator)
    projection = ConvBNReLU(
      inputChannels: a * (2 + configuration.asppRates.count), outputChannels: a, kernelSize: 1,
      using: &generator)
    classifier = Conv2d(
      inputChannels: a, outputChannels: configuration.classCount, kernelSize: 1, hasBias: true,
      using: &generator)
  }

  /// The training-forward state.
  public struct Cache: Sendable {
    var stem: [ConvBNReLU.Cache] = []
    var stage4: DoubleConv.Cache?
    var pointwise: ConvBNReLU.Cache?
    var atrous: [ConvBNReLU.Cache] = []
    var features = Tensor(repeating: 0, shape: [0])  // stage 4 output
    var pooled = Tensor(repeating: 0, shape: [0])  // [n, 1, 1, w4]
    var poolingOutput = Tensor(repeating: 0, shape: [0])  // after the ReLU, [n, 1, 1, a]
    var projection: ConvBNReLU.Cache?
    var classifierInput = Tensor(repeating: 0, shape: [0])
  }

  /// The image-pooling branch: global average, conv with bias, ReLU, broadcast to `h x w`.
  private func poolingBranch(_ features: Tensor) -> (
    pooled: Tensor, output: Tensor, broadcast: Tensor
  ) {
    let pooled = globalAvgPoolForward(features)
    let output = reluForward(asppPooling(pooled))
    let broadcast = resizeBilinearForward(
      output, height: features.shape[1], width: features.shape[2])
    return (pooled, output, broadcast)
  }

  public func callAsFunction(_ images: Tensor) -> Tensor {
    checkInput(images)
    var x = images
    for unit in stem { x = unit(x) }
    x = stage4(x)
    var branches = [asppPointwise(x)]
    for branch in asppAtrous { branches.append(branch(x)) }
    branches.append(poolingBranch(x).broadcast)
    let logits = classifier(projection(concatenating: branches))
    return resizeBilinearForward(logits, height: images.shape[1], width: images.shape[2])
  }

  public mutating func trainingForward(_ images: Tensor) -> (logits: Tensor, cache: Cache) {
    trainingForward(images, statistics: .local)
  }

  public mutating func trainingForward(
    _ images: Tensor, statistics scope: BatchStatisticsScope
  ) -> (logits: Tensor, cache: Cache) {
    checkInput(images)
    var cache = Cache()
    var x = images
    for i in stem.indices {
      let out = stem[i].trainingForward(x, statistics: scope)
      cache.stem.append(out.cache)
      x = out.output
    }
    let deep = stage4.trainingForward(x, statistics: scope)
    cache.stage4 = deep.cache
    x = deep.output
    cache.features = x
    let pointwise = asppPointwise.trainingForward(x, statistics: scope)
    cache.pointwise = pointwise.cache
    var branches = [pointwise.output]
    for i in asppAtrous.indices {
      let out = asppAtrous[i].trainingForward(x, statistics: scope)
      cache.atrous.append(out.cache)
      branches.append(out.output)
    }
    let pooling = poolingBranch(x)
    cache.pooled = pooling.pooled
    cache.poolingOutput = pooling.output
    branches.append(pooling.broadcast)
    let projected = projection.trainingForward(concatenating: branches, statistics: scope)
    cache.projection = projected.cache
    cache.classifierInput = projected.output
    let logits = classifier(projected.output)
    return (resizeBilinearForward(logits, height: images.shape[1], width: images.shape[2]), cache)
  }

  public func backward(_ cache: Cache, logitsGradient: Tensor) -> [String: Tensor] {
    var gradients: [String: Tensor] = [:]
    let small = cache.classifierInput.shape
    let dLogits = resizeBilinearBackward(
      outputGradient: logitsGradient, inputHeight: small[1], inputWidth: small[2])
    let classifierGradient = classifier.backward(
      outputGradient: dLogits, input: cache.classifierInput)
    classifier.record(classifierGradient, prefix: "classifier", into: &gradients)
    guard let dProjected = classifierGradient.input, let projectionCache = cache.projection,
      let pointwiseCache = cache.pointwise, let stage4Cache = cache.stage4,
      let parts = projection.backwardParts(
        outputGradient: dProjected, cache: projectionCache, prefix: "projection", into: &gradients)
    else { preconditionFailure("incomplete DeepLab cache") }
    guard
      var dFeatures = asppPointwise.backward(
        outputGradient: parts[0], cache: pointwiseCache, prefix: "aspp.pointwise", into: &gradients)
    else { preconditionFailure("incomplete DeepLab cache") }
    for i in asppAtrous.indices {
      if let d = asppAtrous[i].backward(
        outputGradient: parts[i + 1], cache: cache.atrous[i], prefix: "aspp.atrous\(i + 1)",
        into: &gradients)
      {
        dFeatures = add(dFeatures, d)
      }
    }
    // Image pooling: broadcast, ReLU, conv, global average.
    let dOutput = resizeBilinearBackward(
      outputGradient: parts[asppAtrous.count + 1], inputHeight: 1, inputWidth: 1)
    let dPre = reluBackward(outputGradient: dOutput, output: cache.poolingOutput)
    let poolingGradient = asppPooling.backward(outputGradient: dPre, input: cache.pooled)
    asppPooling.record(poolingGradient, prefix: "aspp.pooling", into: &gradients)
    if let dPooled = poolingGradient.input {
      dFeatures = add(
        dFeatures, globalAvgPoolBackward(outputGradient: dPooled, inputShape: cache.features.shape))
    }
    guard
      var dx = stage4.backward(
        outputGradient: dFeatures, cache: stage4Cache, prefix: "stage4", into: &gradients)
    else { preconditionFailure("incomplete DeepLab cache") }
    for i in stem.indices.reversed() {
      guard
        let d = stem[i].backward(
          outputGradient: dx, cache: cache.stem[i], prefix: "stem\(i + 1)", into: &gradients,
          computeInputGradient: i > 0)
      else { break }
      dx = d
    }
    return gradients
  }

  public mutating func visitParameters(
    prefix: String, _ body: (String, inout Tensor, ParameterRole) -> Void
  ) {
    for i in stem.indices {
      stem[i].visitParameters(prefix: joinName(prefix, "stem\(i + 1)"), body)
    }
    stage4.visitParameters(prefix: joinName(prefix, "stage4"), body)
    asppPointwise.visitParameters(prefix: joinName(prefix, "aspp.pointwise"), body)
    for i in asppAtrous.indices {
      asppAtrous[i].visitParameters(prefix: joinName(prefix, "aspp.atrous\(i + 1)"), body)
    }
    asppPooling.visitParameters(prefix: joinName(prefix, "aspp.pooling"), body)
    projection.visitParameters(prefix: joinName(prefix, "projection"), body)
    classifier.visitParameters(prefix: joinName(prefix, "classifier"), body)
  }

  private func checkInput(_ images: Tensor) {
    precondition(
      images.rank == 4 && images.shape[3] == configuration.inputChannels
        && images.shape[1] >= 8 && images.shape[2] >= 8,
      "DeepLab input must be [n, h >= 8, w >= 8, \(configuration.inputChannels)], got \(images.shape)"
    )
  }
}
