import Foundation
import Tensor

/// A height and a width, in pixels.
public struct ImageSize: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
  public var height: Int
  public var width: Int

  public init(height: Int, width: Int) {
    self.height = height
    self.width = width
  }

  public var description: String { "\(width)x\(height)" }
}

extension ImageSize {
  /// Parses `HxW` (`96x128`: 96 rows, 128 columns); nil for anything else.
  public init?(heightByWidth text: String) {
    let parts = text.lowercased().split(separator: "x", omittingEmptySubsequences: false)
    guard parts.count == 2, let h = Int(parts[0]), let w = Int(parts[1]), h > 0, w > 0 else {
      return nil
    }
    self.init(height: h, width: w)
  }
}

/// Per-channel normalisation of pixels scaled to `[0, 1]`:
/// ```
/// out = (pixel / 255 - mean[c]) / standardDeviation[c]
/// ```
public struct Normalization: Sendable, Equatable, Codable {
  /// The mean of each channel (R, G, B), in `[0, 1]` units.
  public var mean: [Float]
  /// The standard deviation of each channel.
  public var standardDeviation: [Float]

  /// - Precondition: three positive standard deviations and three means.
  public init(mean: [Float], standardDeviation: [Float]) {
    precondition(mean.count == 3 && standardDeviation.count == 3, "normalisation needs 3 channels")
    precondition(standardDeviation.allSatisfy { $0 > 0 }, "standard deviations must be positive")
    self.mean = mean
    self.standardDeviation = standardDeviation
  }

  /// The ImageNet statistics used by torchvision-pretrained backbones.
  public static let imageNet = Normalization(
    mean: [0.485, 0.456, 0.406], standardDeviation: [0.229, 0.224, 0.225])

  /// Scales to `[0, 1]` only.
  public static let unit = Normalization(mean: [0, 0, 0], standardDeviation: [1, 1, 1])

  /// The raw pixel value (0...255 scale) that normalises to 0 in each channel.
  public var meanPixel: [Float] { mean.map { $0 * 255 } }

  /// Normalises a `[h, w, 3]` (or `[n, h, w, 3]`) tensor of raw 0...255 values, in place.
  public func normalize(_ image: inout Tensor) {
    precondition(image.shape.last == 3, "normalisation expects 3 channels last, got \(image.shape)")
    let scale = standardDeviation.map { 1 / (255 * $0) }
    let shift = zip(mean, standardDeviation).map { -$0 / $1 }
    image.scalars.withUnsafeMutableBufferPointer { buffer in
      var i = 0
      while i < buffer.count {
        for c in 0..<3 { buffer[i + c] = buffer[i + c] * scale[c] + shift[c] }
        i += 3
      }
    }
  }

  /// Undoes ``normalize(_:)`` for a `[h, w, 3]` tensor and rounds to 8-bit RGB (for previews).
  public func rgbImage(from image: Tensor) -> RGBImage {
    precondition(image.rank == 3 && image.shape[2] == 3, "expected [h, w, 3], got \(image.shape)")
    var pixels = [UInt8](repeating: 0, count: image.count)
    for i in 0..<image.count {
      let c = i % 3
      let v = (image.scalars[i] * standardDeviation[c] + mean[c]) * 255
      pixels[i] = UInt8(max(0, min(255, v.rounded())))
    }
    return RGBImage(width: image.shape[1], height: image.shape[0], pixels: pixels)
  }
}

/// Random photometric changes of an image (torchvision's `ColorJitter` without hue): each
/// factor is drawn uniformly from `max(0, 1 - x)...(1 + x)` for its strength `x`; 0 is off.
///
/// Useful when the target domain is darker or duller than the source (CamVid's dusk frames are
/// about half as bright as its day frames).
public struct PhotometricJitter: Sendable, Equatable, Codable {
  /// The strength of the brightness factor.
  public var brightness: Float
  /// The strength of the contrast factor.
  public var contrast: Float
  /// The strength of the saturation factor.
  public var saturation: Float

  public init(brightness: Float = 0, contrast: Float = 0, saturation: Float = 0) {
    self.brightness = brightness
    self.contrast = contrast
    self.saturation = saturation
  }

  /// No jitter.
  public static let none = PhotometricJitter()

  /// Whether every strength is 0.
  public var isNone: Bool { brightness == 0 && contrast == 0 && saturation == 0 }
}

/// The pre-processing and augmentation recipe.
///
/// Applied in this order: resize to ``workingSize`` (bilinear image, antialiased when reducing
/// unless ``antialias`` is off; nearest-neighbour label), random
/// scale by a factor drawn from ``scaleRange`` (plain bilinear), random crop to ``cropSize``
/// (when the scaled image is smaller, it is placed at a random offset and padded: the image
/// with the mean pixel, the label with ``ignoreIndex``),
/// horizontal flip with ``flipProbability``, Gaussian blur with ``blurProbability`` and a sigma
/// drawn from ``blurSigmaRange``, photometric ``jitter``, then ``normalization``. Labels follow
/// every geometric step (scale, crop, flip) and none of the photometric ones.
public struct AugmentationConfig: Sendable, Equatable, Codable {
  /// Every sample is first resized to this size (`nil` keeps the decoded size).
  public var workingSize: ImageSize?
  /// The random scale factor range (`1...1` disables scaling).
  public var scaleRange: ClosedRange<Float>
  /// The random crop size (`nil` disables cropping).
  public var cropSize: ImageSize?
  /// The probability of a horizontal flip.
  public var flipProbability: Float
  /// The probability of a Gaussian blur.
  public var blurProbability: Float
  /// The blur sigma range, in pixels.
  public var blurSigmaRange: ClosedRange<Float>
  /// Random brightness, contrast and saturation (``PhotometricJitter/none`` unless set).
  public var jitter: PhotometricJitter
  /// The per-channel normalisation.
  public var normalization: Normalization
  /// The label value of padded pixels (and of unlabelled samples).
  public var ignoreIndex: IgnoreIndex
  /// Whether image reductions are antialiased (labels always use nearest neighbour).
  public var antialias: Bool

  public init(
    workingSize: ImageSize? = nil, scaleRange: ClosedRange<Float> = 1...1,
    cropSize: ImageSize? = nil, flipProbability: Float = 0, blurProbability: Float = 0,
    blurSigmaRange: ClosedRange<Float> = 0.1...2, jitter: PhotometricJitter = .none,
    normalization: Normalization = .imageNet, ignoreIndex: IgnoreIndex = .standard,
    antialias: Bool = true
  ) {
    precondition(scaleRange.lowerBound > 0, "scale factors must be positive")
    self.workingSize = workingSize
    self.scaleRange = scaleRange
    self.cropSize = cropSize
    self.flipProbability = flipProbability
    self.blurProbability = blurProbability
    self.blurSigmaRange = blurSigmaRange
    self.jitter = jitter
    self.normalization = normalization
    self.ignoreIndex = ignoreIndex
    self.antialias = antialias
  }

  enum CodingKeys: String, CodingKey {
    case workingSize, scaleRange, cropSize, flipProbability, blurProbability, blurSigmaRange
    case jitter, normalization, ignoreIndex, antialias
  }

  /// Decodes a recipe; `jitter` may be absent (`training.json` files written before it existed).
  public init(from decoder: any Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    workingSize = try c.decodeIfPresent(ImageSize.self, forKey: .workingSize)
    scaleRange = try c.decode(ClosedRange<Float>.self, forKey: .scaleRange)
    cropSize = try c.decodeIfPresent(ImageSize.self, forKey: .cropSize)
    flipProbability = try c.decode(Float.self, forKey: .flipProbability)
    blurProbability = try c.decode(Float.self, forKey: .blurProbability)
    blurSigmaRange = try c.decode(ClosedRange<Float>.self, forKey: .blurSigmaRange)
    jitter = try c.decodeIfPresent(PhotometricJitter.self, forKey: .jitter) ?? .none
    normalization = try c.decode(Normalization.self, forKey: .normalization)
    ignoreIndex = try c.decode(IgnoreIndex.self, forKey: .ignoreIndex)
    antialias = try c.decode(Bool.self, forKey: .antialias)
  }

  /// A typical training recipe: working size, scale 0.5...2, crop, flip 0.5, no blur.
  public static func training(
    workingSize: ImageSize, cropSize: ImageSize, ignoreIndex: IgnoreIndex
  ) -> AugmentationConfig {
    AugmentationConfig(
      workingSize: workingSize, scaleRange: 0.5...2, cropSize: cropSize, flipProbability: 0.5,
      ignoreIndex: ignoreIndex)
  }

  /// Evaluation: resize to the working size and normalise, nothing random.
  public static func evaluation(workingSize: ImageSize?, ignoreIndex: IgnoreIndex = .standard)
    -> AugmentationConfig
  {
    AugmentationConfig(workingSize: workingSize, ignoreIndex: ignoreIndex)
  }
  /// The output size for an input of `size`, when it does not depend on the random draws.
  public func outputSize(forInput size: ImageSize) -> ImageSize? {
    if let cropSize { return cropSize }
    if scaleRange.lowerBound != scaleRange.upperBound { return nil }
    let base = workingSize ?? size
    let s = scaleRange.lowerBound
    return s == 1
      ? base
      : ImageSize(
        height: max(1, Int((Float(base.height) * s).rounded())),
        width: max(1, Int((Float(base.width) * s).rounded())))
  }
}

/// A pre-processed sample: a normalised `[h, w, 3]` image and its `h * w` labels.
public struct AugmentedSample: Sendable, Equatable {
  public var id: String
  public var image: Tensor
  /// The labels, `nil` for unlabelled samples.
  public var label: [UInt8]?
  /// The size of the decoded file, before any resize.
  public var originalSize: ImageSize
}

/// Applies an ``AugmentationConfig``; every random draw comes from the generator passed in.
public struct Augmenter: Sendable, Equatable {
  public var config: AugmentationConfig

  public init(_ config: AugmentationConfig) { self.config = config }

  /// Pre-processes and augments one sample.
  ///
  /// The generator is always advanced by the same number of draws (scale, crop offsets, flip,
  /// blur decision and sigma, three jitter factors), whatever the probabilities, so streams
  /// stay aligned.
  public func apply(_ sample: Sample, using generator: inout SeededGenerator) -> AugmentedSample {
    let original = ImageSize(height: sample.image.height, width: sample.image.width)
    let (image, label) = apply(
      image: ImageOps.tensor(from: sample.image), label: sample.label?.values,
      using: &generator)
    return AugmentedSample(id: sample.id, image: image, label: label, originalSize: original)
  }

  /// The first, deterministic step of ``apply(image:label:using:)``: a raw `[h, w, 3]` image and
  /// its labels resized to the working size (unchanged without one, or at that size already),
  /// so that an image kept at the working size gives the same batches as its file.
  public func atWorkingSize(image: Tensor, label: [UInt8]?) -> (image: Tensor, label: [UInt8]?) {
    let size = ImageSize(height: image.shape[0], width: image.shape[1])
    guard let working = config.workingSize, working != size else { return (image, label) }
    return (
      ImageOps.resizeBilinear(image, to: working, antialias: config.antialias),
      label.map { ImageOps.resizeNearest($0, from: size, to: working) }
    )
  }

  /// Pre-processes and augments an image already decoded to a `[h, w, 3]` tensor of raw
  /// `0...255` values, with its `h * w` labels (`nil`: none), e.g. images held in memory at
  /// the working size. Returns the normalised image and the labels transformed with it.
  public func apply(image input: Tensor, label inputLabel: [UInt8]?, using generator: inout SeededGenerator)
    -> (image: Tensor, label: [UInt8]?)
  {
    var (image, label) = atWorkingSize(image: input, label: inputLabel)
    var size = ImageSize(height: image.shape[0], width: image.shape[1])

    func resize(to target: ImageSize, antialias: Bool) {
      guard target != size else { return }
      image = ImageOps.resizeBilinear(image, to: target, antialias: antialias)
      if let l = label { label = ImageOps.resizeNearest(l, from: size, to: target) }
      size = target
    }

    let scaleDraw = generator.nextUniform()
    let range = config.scaleRange
    let scale = range.lowerBound + (range.upperBound - range.lowerBound) * scaleDraw
    if scale != 1 {
      // Plain bilinear, as PyTorch's F.interpolate: the factors are mild (e.g. 0.75...1.25).
      resize(
        to: ImageSize(
          height: max(1, Int((Float(size.height) * scale).rounded())),
          width: max(1, Int((Float(size.width) * scale).rounded()))),
        antialias: false)
    }

    let topDraw = generator.next()
    let leftDraw = generator.next()
    if let crop = config.cropSize {
      // A window inside a larger image, or a random placement of a smaller one in the padding.
      func offset(_ draw: UInt64, _ length: Int, _ window: Int) -> Int {
        length >= window
          ? Int(draw % UInt64(length - window + 1)) : -Int(draw % UInt64(window - length + 1))
      }
      let top = offset(topDraw, size.height, crop.height)
      let left = offset(leftDraw, size.width, crop.width)
      image = ImageOps.cropped(
        image, top: top, left: left, size: crop, fill: config.normalization.meanPixel)
      if let l = label {
        label = ImageOps.cropped(
          l, size: size, top: top, left: left, to: crop, fill: config.ignoreIndex.value)
      }
      size = crop
    }

    if generator.nextUniform() < config.flipProbability {
      image = ImageOps.flippedHorizontally(image)
      if let l = label { label = ImageOps.flippedHorizontally(l, size: size) }
    }

    let blurDraw = generator.nextUniform()
    let sigmaDraw = generator.nextUniform()
    if blurDraw < config.blurProbability {
      let sigmas = config.blurSigmaRange
      let sigma = sigmas.lowerBound + (sigmas.upperBound - sigmas.lowerBound) * sigmaDraw
      image = ImageOps.gaussianBlurred(image, sigma: sigma)
    }

    let jitter = config.jitter
    func factor(_ strength: Float, _ draw: Float) -> Float {
      let low = max(0, 1 - strength)
      return low + (1 + strength - low) * draw
    }
    let brightness = factor(jitter.brightness, generator.nextUniform())
    let contrast = factor(jitter.contrast, generator.nextUniform())
    let saturation = factor(jitter.saturation, generator.nextUniform())
    if !jitter.isNone {
      image = ImageOps.adjusted(
        image, brightness: brightness, contrast: contrast, saturation: saturation)
    }

    config.normalization.normalize(&image)
    return (image, label)
  }
}
