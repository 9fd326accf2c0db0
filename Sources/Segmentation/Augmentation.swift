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

/// Deterministic image operations on channels-last `[h, w, c]` tensors and row-major label maps.
public enum ImageOps {
  /// Converts 8-bit RGB to a `[h, w, 3]` tensor of raw values in `0...255`.
  public static func tensor(from image: RGBImage) -> Tensor {
    Tensor(shape: [image.height, image.width, 3], scalars: image.pixels.map { Float($0) })
  }

  /// Bilinear resize of a `[h, w, c]` tensor with half-pixel centres (PyTorch
  /// `align_corners=false`, OpenCV `INTER_LINEAR`, no antialiasing):
  /// ```
  /// sx = clamp((x + 0.5) * inW / outW - 0.5, 0, inW - 1)
  /// ```
  /// With `antialias` and an axis that shrinks, the triangle filter is widened by the reduction
  /// factor (Pillow's `BILINEAR`, PyTorch `antialias=True`), so that an 8x reduction averages 8
  /// pixels instead of sampling 2 of them; enlarging axes are unchanged.
  /// - Precondition: rank 3 and positive output size.
  public static func resizeBilinear(_ image: Tensor, to size: ImageSize, antialias: Bool = false)
    -> Tensor
  {
    precondition(image.rank == 3, "expected [h, w, c], got \(image.shape)")
    precondition(size.height > 0 && size.width > 0, "invalid output size \(size)")
    let (inH, inW, c) = (image.shape[0], image.shape[1], image.shape[2])
    if inH == size.height && inW == size.width { return image }
    if antialias && (size.height < inH || size.width < inW) {
      return resizeFiltered(image, to: size)
    }
    let outH = size.height
    let outW = size.width
    // Precompute the horizontal taps.
    var x0 = [Int](repeating: 0, count: outW)
    var x1 = [Int](repeating: 0, count: outW)
    var fx = [Float](repeating: 0, count: outW)
    let scaleX = Float(inW) / Float(outW)
    for x in 0..<outW {
      let sx = min(max((Float(x) + 0.5) * scaleX - 0.5, 0), Float(inW - 1))
      x0[x] = Int(sx)
      x1[x] = min(x0[x] + 1, inW - 1)
      fx[x] = sx - Float(x0[x])
    }
    let scaleY = Float(inH) / Float(outH)
    var out = [Float](repeating: 0, count: outH * outW * c)
    image.scalars.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in
        for y in 0..<outH {
          let sy = min(max((Float(y) + 0.5) * scaleY - 0.5, 0), Float(inH - 1))
          let y0 = Int(sy)
          let y1 = min(y0 + 1, inH - 1)
          let fy = sy - Float(y0)
          let row0 = y0 * inW * c  // offset of source row y0
          let row1 = y1 * inW * c  // offset of source row y1
          for x in 0..<outW {
            let a = x0[x] * c
            let b = x1[x] * c
            let wx = fx[x]
            let o = (y * outW + x) * c  // offset of output pixel (y, x)
            for k in 0..<c {
              let top = src[row0 + a + k] + (src[row0 + b + k] - src[row0 + a + k]) * wx
              let bottom = src[row1 + a + k] + (src[row1 + b + k] - src[row1 + a + k]) * wx
              dst[o + k] = top + (bottom - top) * fy
            }
          }
        }
      }
    }
    return Tensor(shape: [outH, outW, c], scalars: out)
  }

  /// The taps of a triangle filter resampling `inSize` samples to `outSize` (Pillow's
  /// `precompute_coeffs`): output `x` is `sum(weights[x][j] * input[start[x] + j])`.
  static func triangleTaps(inSize: Int, outSize: Int) -> (start: [Int], weights: [[Float]]) {
    let scale = Double(inSize) / Double(outSize)
    let filterScale = max(scale, 1)
    let support = filterScale  // the triangle's support is 1, widened when reducing
    var starts: [Int] = []
    var weights: [[Float]] = []
    for x in 0..<outSize {
      let center = (Double(x) + 0.5) * scale
      let low = max(Int(center - support + 0.5), 0)
      let high = min(Int(center + support + 0.5), inSize)
      var taps = (low..<high).map { j in max(0, 1 - abs((Double(j) - center + 0.5) / filterScale)) }
      let total = taps.reduce(0, +)
      if total != 0 { taps = taps.map { $0 / total } }
      starts.append(low)
      weights.append(taps.map { Float($0) })
    }
    return (starts, weights)
  }

  /// Separable triangle-filter resize (horizontal pass, then vertical), see
  /// ``resizeBilinear(_:to:antialias:)``.
  static func resizeFiltered(_ image: Tensor, to size: ImageSize) -> Tensor {
    let (inH, inW, c) = (image.shape[0], image.shape[1], image.shape[2])
    let horizontal = triangleTaps(inSize: inW, outSize: size.width)
    let vertical = triangleTaps(inSize: inH, outSize: size.height)
    // Pass 1: [inH, inW, c] -> [inH, outW, c].
    var rows = [Float](repeating: 0, count: inH * size.width * c)
    image.scalars.withUnsafeBufferPointer { src in
      rows.withUnsafeMutableBufferPointer { dst in
        for y in 0..<inH {
          for x in 0..<size.width {
            let o = (y * size.width + x) * c  // output pixel (y, x)
            let start = horizontal.start[x]
            for (j, weight) in horizontal.weights[x].enumerated() {
              let s = (y * inW + start + j) * c  // input pixel (y, start + j)
              for k in 0..<c { dst[o + k] += weight * src[s + k] }
            }
          }
        }
      }
    }
    // Pass 2: [inH, outW, c] -> [outH, outW, c].
    let rowLength = size.width * c
    var out = [Float](repeating: 0, count: size.height * rowLength)
    rows.withUnsafeBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in
        for y in 0..<size.height {
          let start = vertical.start[y]
          for (j, weight) in vertical.weights[y].enumerated() {
            let s = (start + j) * rowLength  // row start + j of pass 1
            let o = y * rowLength
            for i in 0..<rowLength { dst[o + i] += weight * src[s + i] }
          }
        }
      }
    }
    return Tensor(shape: [size.height, size.width, c], scalars: out)
  }

  /// Nearest-neighbour resize of a row-major map (labels, predictions):
  /// `sx = min(floor((x + 0.5) * inW / outW), inW - 1)`.
  ///
  /// - Precondition: `values.count == from.height * from.width`, positive sizes.
  public static func resizeNearest<Element>(
    _ values: [Element], from: ImageSize, to size: ImageSize
  ) -> [Element] {
    precondition(values.count == from.height * from.width, "\(values.count) values for \(from)")
    precondition(size.height > 0 && size.width > 0, "invalid output size \(size)")
    if from == size { return values }
    let xs = (0..<size.width).map {
      min(Int((Double($0) + 0.5) * Double(from.width) / Double(size.width)), from.width - 1)
    }
    var out: [Element] = []
    out.reserveCapacity(size.height * size.width)
    for y in 0..<size.height {
      let sy = min(
        Int((Double(y) + 0.5) * Double(from.height) / Double(size.height)), from.height - 1)
      let row = sy * from.width
      for x in xs { out.append(values[row + x]) }
    }
    return out
  }

  /// Nearest-neighbour resize of a label image.
  public static func resizeNearest(_ label: LabelImage, to size: ImageSize) -> LabelImage {
    LabelImage(
      width: size.width, height: size.height,
      values: resizeNearest(
        label.values, from: ImageSize(height: label.height, width: label.width), to: size))
  }

  /// Mirrors a `[h, w, c]` tensor left to right.
  public static func flippedHorizontally(_ image: Tensor) -> Tensor {
    precondition(image.rank == 3, "expected [h, w, c], got \(image.shape)")
    let (h, w, c) = (image.shape[0], image.shape[1], image.shape[2])
    var out = image.scalars
    for y in 0..<h {
      for x in 0..<w {
        let s = (y * w + x) * c
        let d = (y * w + (w - 1 - x)) * c
        for k in 0..<c { out[d + k] = image.scalars[s + k] }
      }
    }
    return Tensor(shape: image.shape, scalars: out)
  }

  /// Mirrors a row-major map left to right.
  public static func flippedHorizontally<Element>(_ values: [Element], size: ImageSize) -> [Element]
  {
    precondition(values.count == size.height * size.width, "\(values.count) values for \(size)")
    var out = values
    for y in 0..<size.height {
      let row = y * size.width
      for x in 0..<size.width { out[row + size.width - 1 - x] = values[row + x] }
    }
    return out
  }

  /// Separable Gaussian blur of a `[h, w, c]` tensor; borders replicate the edge pixel.
  ///
  /// The kernel has radius `ceil(3 * sigma)` and sums to 1. `sigma <= 0` returns the input.
  public static func gaussianBlurred(_ image: Tensor, sigma: Float) -> Tensor {
    precondition(image.rank == 3, "expected [h, w, c], got \(image.shape)")
    guard sigma > 0 else { return image }
    let (h, w, c) = (image.shape[0], image.shape[1], image.shape[2])
    let radius = max(1, Int((3 * sigma).rounded(.up)))
    var kernel = (-radius...radius).map { exp(-Float($0 * $0) / (2 * sigma * sigma)) }
    let total = kernel.reduce(0, +)
    kernel = kernel.map { $0 / total }
    var horizontal = [Float](repeating: 0, count: image.count)
    for y in 0..<h {
      for x in 0..<w {
        let o = (y * w + x) * c
        for (j, weight) in kernel.enumerated() {
          let sx = min(max(x + j - radius, 0), w - 1)
          let s = (y * w + sx) * c
          for k in 0..<c { horizontal[o + k] += weight * image.scalars[s + k] }
        }
      }
    }
    var out = [Float](repeating: 0, count: image.count)
    for y in 0..<h {
      for (j, weight) in kernel.enumerated() {
        let sy = min(max(y + j - radius, 0), h - 1)
        let srcRow = sy * w * c
        let dstRow = y * w * c
        for i in 0..<(w * c) { out[dstRow + i] += weight * horizontal[srcRow + i] }
      }
    }
    return Tensor(shape: image.shape, scalars: out)
  }

  /// Copies the window `[top, top + size.height) x [left, left + size.width)` of a `[h, w, c]`
  /// tensor; parts outside the source are filled with `fill` (one value per channel).
  public static func cropped(
    _ image: Tensor, top: Int, left: Int, size: ImageSize, fill: [Float]
  ) -> Tensor {
    precondition(image.rank == 3 && fill.count == image.shape[2], "fill needs one value a channel")
    let (h, w, c) = (image.shape[0], image.shape[1], image.shape[2])
    var out = [Float](repeating: 0, count: size.height * size.width * c)
    for y in 0..<size.height {
      let sy = top + y
      for x in 0..<size.width {
        let sx = left + x
        let o = (y * size.width + x) * c
        if sy >= 0 && sy < h && sx >= 0 && sx < w {
          let s = (sy * w + sx) * c
          for k in 0..<c { out[o + k] = image.scalars[s + k] }
        } else {
          for k in 0..<c { out[o + k] = fill[k] }
        }
      }
    }
    return Tensor(shape: [size.height, size.width, c], scalars: out)
  }

  /// Copies a window of a row-major map; parts outside the source are `fill`.
  public static func cropped<Element>(
    _ values: [Element], size source: ImageSize, top: Int, left: Int, to size: ImageSize,
    fill: Element
  ) -> [Element] {
    precondition(
      values.count == source.height * source.width, "\(values.count) values for \(source)")
    var out = [Element](repeating: fill, count: size.height * size.width)
    for y in 0..<size.height {
      let sy = top + y
      guard sy >= 0 && sy < source.height else { continue }
      for x in 0..<size.width {
        let sx = left + x
        if sx >= 0 && sx < source.width { out[y * size.width + x] = values[sy * source.width + sx] }
      }
    }
    return out
  }
}

/// The pre-processing and augmentation recipe.
///
/// Applied in this order: resize to ``workingSize`` (bilinear image, antialiased when reducing
/// unless ``antialias`` is off; nearest-neighbour label), random
/// scale by a factor drawn from ``scaleRange`` (plain bilinear), random crop to ``cropSize``
/// (when the scaled image is smaller, it is placed at a random offset and padded: the image
/// with the mean pixel, the label with ``ignoreIndex``),
/// horizontal flip with ``flipProbability``, Gaussian blur with ``blurProbability`` and a sigma
/// drawn from ``blurSigmaRange``, then ``normalization``.
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
  /// The per-channel normalisation.
  public var normalization: Normalization
  /// The label value of padded pixels (and of unlabelled samples).
  public var ignoreIndex: UInt8
  /// Whether image reductions are antialiased (labels always use nearest neighbour).
  public var antialias: Bool

  public init(
    workingSize: ImageSize? = nil, scaleRange: ClosedRange<Float> = 1...1,
    cropSize: ImageSize? = nil, flipProbability: Float = 0, blurProbability: Float = 0,
    blurSigmaRange: ClosedRange<Float> = 0.1...2, normalization: Normalization = .imageNet,
    ignoreIndex: UInt8 = 255, antialias: Bool = true
  ) {
    precondition(scaleRange.lowerBound > 0, "scale factors must be positive")
    self.workingSize = workingSize
    self.scaleRange = scaleRange
    self.cropSize = cropSize
    self.flipProbability = flipProbability
    self.blurProbability = blurProbability
    self.blurSigmaRange = blurSigmaRange
    self.normalization = normalization
    self.ignoreIndex = ignoreIndex
    self.antialias = antialias
  }

  /// A typical training recipe: working size, scale 0.5...2, crop, flip 0.5, no blur.
  public static func training(
    workingSize: ImageSize, cropSize: ImageSize, ignoreIndex: UInt8 = 255
  ) -> AugmentationConfig {
    AugmentationConfig(
      workingSize: workingSize, scaleRange: 0.5...2, cropSize: cropSize, flipProbability: 0.5,
      ignoreIndex: ignoreIndex)
  }

  /// Evaluation: resize to the working size and normalise, nothing random.
  public static func evaluation(workingSize: ImageSize?, ignoreIndex: UInt8 = 255)
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
  /// blur decision and sigma), whatever the probabilities, so streams stay aligned.
  public func apply(_ sample: Sample, using generator: inout SeededGenerator) -> AugmentedSample {
    let original = ImageSize(height: sample.image.height, width: sample.image.width)
    var image = ImageOps.tensor(from: sample.image)
    var label = sample.label?.values
    var size = original

    func resize(to target: ImageSize, antialias: Bool) {
      guard target != size else { return }
      image = ImageOps.resizeBilinear(image, to: target, antialias: antialias)
      if let l = label { label = ImageOps.resizeNearest(l, from: size, to: target) }
      size = target
    }

    if let working = config.workingSize { resize(to: working, antialias: config.antialias) }

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
          l, size: size, top: top, left: left, to: crop, fill: config.ignoreIndex)
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

    config.normalization.normalize(&image)
    return AugmentedSample(id: sample.id, image: image, label: label, originalSize: original)
  }
}
