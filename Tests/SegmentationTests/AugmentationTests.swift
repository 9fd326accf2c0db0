import Foundation
import Tensor
import Testing

@testable import Segmentation

@Suite("pre-processing and augmentation")
struct AugmentationTests {
  @Test("bilinear resize: identity, constants, 2x down = block means, 2x up half-pixel taps")
  func bilinear() {
    let t = Tensor(shape: [4, 4, 1], scalars: (0..<16).map { Float($0) })
    #expect(ImageOps.resizeBilinear(t, to: ImageSize(height: 4, width: 4)) == t)
    let down = ImageOps.resizeBilinear(t, to: ImageSize(height: 2, width: 2))
    #expect(down.scalars == [2.5, 4.5, 10.5, 12.5])
    let row = Tensor(shape: [1, 2, 1], scalars: [0, 10])
    let up = ImageOps.resizeBilinear(row, to: ImageSize(height: 1, width: 4))
    #expect(up.scalars == [0, 2.5, 7.5, 10])
    let constant = Tensor(repeating: 7, shape: [3, 5, 3])
    let resized = ImageOps.resizeBilinear(constant, to: ImageSize(height: 7, width: 2))
    #expect(resized.shape == [7, 2, 3])
    #expect(resized.scalars.allSatisfy { abs($0 - 7) < 1e-5 })
  }

  @Test(
    "antialiased bilinear resize matches Pillow's float BILINEAR",
    arguments: ["5x4", "7x20", "40x30", "16x12"])
  func antialiasedMatchesPillow(size: String) throws {
    let data = try Data(contentsOf: URL(fileURLWithPath: TestPaths.fixture("expected.json")))
    struct Expected: Decodable { var resize: [String: [Float]] }
    let expected = try #require(try JSONDecoder().decode(Expected.self, from: data).resize[size])
    let parts = size.split(separator: "x").compactMap { Int($0) }
    let source = ImageOps.tensor(
      from: try ImageFile.readRGB(at: TestPaths.fixture("resize_src.png")))
    let out = ImageOps.resizeBilinear(
      source, to: ImageSize(height: parts[1], width: parts[0]), antialias: true)
    let reference = Tensor(shape: out.shape, scalars: expected)
    #expect(
      out.maxAbsoluteDifference(to: reference) < 1e-3,
      "max difference \(out.maxAbsoluteDifference(to: reference))")
  }

  @Test("a 3x reduction of a 1-pixel checkerboard averages with antialias, aliases without")
  func antialiasChecker() {
    let checker = Tensor(
      shape: [30, 30, 1], scalars: (0..<900).map { Float(($0 / 30 + $0 % 30) % 2) * 255 })
    let size = ImageSize(height: 10, width: 10)
    let smooth = ImageOps.resizeBilinear(checker, to: size, antialias: true)
    #expect(smooth.scalars.allSatisfy { abs($0 - 127.5) < 30 })
    // Without antialiasing every output samples one source pixel: pure black or white.
    let aliased = ImageOps.resizeBilinear(checker, to: size)
    #expect(aliased.scalars.allSatisfy { $0 == 0 || $0 == 255 })
  }

  @Test("nearest resize of labels never invents values")
  func nearest() {
    let values: [UInt8] = [1, 2, 3, 4]
    let up = ImageOps.resizeNearest(
      values, from: ImageSize(height: 2, width: 2), to: ImageSize(height: 4, width: 4))
    #expect(up == [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4])
    let big = (0..<16).map { UInt8($0) }
    let down = ImageOps.resizeNearest(
      big, from: ImageSize(height: 4, width: 4), to: ImageSize(height: 2, width: 2))
    #expect(down == [5, 7, 13, 15])
    let odd = ImageOps.resizeNearest(
      big, from: ImageSize(height: 4, width: 4), to: ImageSize(height: 3, width: 7))
    #expect(Set(odd).isSubset(of: Set(big)))
  }

  @Test("Gaussian blur keeps constants and mass; impulse variance is sigma^2")
  func blur() {
    let constant = Tensor(repeating: 3, shape: [6, 5, 2])
    #expect(
      ImageOps.gaussianBlurred(constant, sigma: 1.3).scalars.allSatisfy { abs($0 - 3) < 1e-4 })
    var impulse = Tensor(repeating: 0, shape: [21, 21, 1])
    impulse[10, 10, 0] = 1
    let sigma: Float = 1.5
    let blurred = ImageOps.gaussianBlurred(impulse, sigma: sigma)
    #expect(abs(blurred.scalars.reduce(0, +) - 1) < 1e-4)
    var variance: Float = 0
    for y in 0..<21 {
      for x in 0..<21 {
        #expect(abs(blurred[y, x, 0] - blurred[20 - y, x, 0]) < 1e-6)
        #expect(abs(blurred[y, x, 0] - blurred[y, 20 - x, 0]) < 1e-6)
        variance += blurred[y, x, 0] * Float((x - 10) * (x - 10))
      }
    }
    #expect(abs(variance - sigma * sigma) < 0.05 * sigma * sigma, "variance \(variance)")
    #expect(ImageOps.gaussianBlurred(impulse, sigma: 0) == impulse)
  }

  @Test("ImageNet normalisation and its inverse")
  func normalization() {
    var t = ImageOps.tensor(from: RGBImage(width: 1, height: 1, pixels: [255, 0, 128]))
    Normalization.imageNet.normalize(&t)
    #expect(abs(t.scalars[0] - (1 - 0.485) / 0.229) < 1e-5)
    #expect(abs(t.scalars[1] - (0 - 0.456) / 0.224) < 1e-5)
    #expect(abs(t.scalars[2] - (128.0 / 255 - 0.406) / 0.225) < 1e-5)
    #expect(Normalization.imageNet.rgbImage(from: t).pixels == [255, 0, 128])
  }

  /// A 10x8 sample whose red channel is 10 * label and whose label differs in every pixel.
  private func codedSample() -> Sample {
    let w = 10
    let h = 8
    let labels = (0..<(w * h)).map { UInt8($0 % 25) }
    let pixels: [UInt8] = labels.flatMap { (v: UInt8) -> [UInt8] in [v * 10, 0, 200] }
    return Sample(
      id: "coded", image: RGBImage(width: w, height: h, pixels: pixels),
      label: LabelImage(width: w, height: h, values: labels))
  }

  @Test("crop and flip move image and label together; padding is mean/ignore")
  func cropFlipConsistency() {
    let sample = codedSample()
    let config = AugmentationConfig(
      cropSize: ImageSize(height: 12, width: 7), flipProbability: 0.5, normalization: .unit,
      ignoreIndex: 250)
    var generator = SeededGenerator(seed: 5)
    var flips = 0
    var padTops: Set<Int> = []
    for _ in 0..<20 {
      let out = Augmenter(config).apply(sample, using: &generator)
      #expect(out.image.shape == [12, 7, 3])
      let label = try? #require(out.label)
      guard let label else { continue }
      #expect(label.count == 84)
      for i in 0..<84 {
        if label[i] == 250 {
          #expect(out.image.scalars[3 * i] == 0 && out.image.scalars[3 * i + 2] == 0)
        } else {
          #expect(abs(out.image.scalars[3 * i] * 255 - Float(label[i]) * 10) < 1e-3)
          #expect(abs(out.image.scalars[3 * i + 2] * 255 - 200) < 1e-3)
        }
      }
      // 4 of the 12 rows are padding (the source has 8 rows), above and below at a random
      // offset: the 8 image rows are contiguous.
      let rows = (0..<12).filter { r in label[(r * 7)..<(r * 7 + 7)].allSatisfy { $0 == 250 } }
      #expect(rows.count == 4)
      let top = rows.filter { $0 < 4 }.count
      #expect(rows == Array(0..<top) + Array((8 + top)..<12), "\(rows)")
      padTops.insert(top)
      let first = top * 7
      if label[first] > label[first + 1] { flips += 1 }
    }
    #expect(flips > 0 && flips < 20)
    #expect(padTops.count > 1, "the image is placed at random offsets in the padding")
  }

  @Test("random scale resizes label with nearest, image with bilinear; draws are seeded")
  func scaleAndDeterminism() {
    let sample = codedSample()
    let config = AugmentationConfig(
      workingSize: ImageSize(height: 4, width: 5), scaleRange: 0.5...2, flipProbability: 0.5,
      blurProbability: 0.5)
    var a = SeededGenerator(seed: 9)
    var b = SeededGenerator(seed: 9)
    var sizes = Set<ImageSize>()
    for _ in 0..<10 {
      let x = Augmenter(config).apply(sample, using: &a)
      let y = Augmenter(config).apply(sample, using: &b)
      #expect(x == y)
      let size = ImageSize(height: x.image.shape[0], width: x.image.shape[1])
      sizes.insert(size)
      #expect(x.label?.count == size.height * size.width)
      #expect(Set(x.label ?? []).isSubset(of: Set(sample.label?.values ?? [])))
      #expect(x.originalSize == ImageSize(height: 8, width: 10))
    }
    #expect(sizes.count > 1)
    #expect(config.outputSize(forInput: ImageSize(height: 8, width: 10)) == nil)
    #expect(
      AugmentationConfig.evaluation(workingSize: ImageSize(height: 3, width: 3))
        .outputSize(forInput: ImageSize(height: 8, width: 10)) == ImageSize(height: 3, width: 3))
  }
}
