import Foundation
import Tensor
import TestSupport
import Testing

@testable import Segmentation

@Test("sliding window: origins spread from edge to edge with steps of at most half a window")
func slidingWindowOrigins() {
  let window = SlidingWindow(size: ImageSize(height: 40, width: 40))
  #expect(window.origins(length: 100, window: 40) == [0, 20, 40, 60])
  #expect(window.origins(length: 90, window: 40) == [0, 17, 33, 50])  // nnU-Net's rounding
  #expect(window.origins(length: 40, window: 40) == [0])
  #expect(window.origins(length: 41, window: 40) == [0, 1])
  let importance = SlidingWindow.importance(height: 9, width: 16)
  #expect(importance.max() == 1 && importance.allSatisfy { $0 > 0 })
  #expect(importance[4 * 16 + 7] == importance[4 * 16 + 8])  // symmetric about the centre
  #expect(importance[0] < 1e-3)  // corners count least
}

@Test("sliding window on an image the size of the window equals plain inference")
func slidingWindowOneWindow() {
  var rng = SeededGenerator(seed: 21)
  let model = UNet(.init(widths: [4, 8], classCount: 5), using: &rng)
  let images = Tensor.randomNormal(shape: [2, 24, 40, 3], using: &rng)
  let plain = predictSegmentation(model, images: images)
  let windowed = predictSegmentation(
    model, images: images, window: SlidingWindow(size: ImageSize(height: 24, width: 40)))
  let difference = plain.probabilities.maxAbsoluteDifference(to: windowed.probabilities)
  #expect(difference < 1e-6, "max difference \(difference)")
  #expect(plain.labels == windowed.labels)
  // A window larger than the image is one window too.
  let larger = predictSegmentation(
    model, images: images, window: SlidingWindow(size: ImageSize(height: 64, width: 64)))
  #expect(plain.probabilities.maxAbsoluteDifference(to: larger.probabilities) < 1e-6)
  // With flips, each window is flipped on its own: the same for one window.
  let flipped = predictSegmentation(model, images: images, horizontalFlip: true)
  let flippedWindow = predictSegmentation(
    model, images: images, horizontalFlip: true,
    window: SlidingWindow(size: ImageSize(height: 24, width: 40)))
  #expect(flipped.probabilities.maxAbsoluteDifference(to: flippedWindow.probabilities) < 1e-6)
}

@Test("sliding window blends constant window predictions back to the constant")
func slidingWindowBlends() {
  // A "network" that predicts the same distribution everywhere: any blend gives it back.
  let window = SlidingWindow(size: ImageSize(height: 8, width: 8), windowsPerPass: 3)
  let images = Tensor(repeating: 0, shape: [2, 19, 23, 1])
  var passes = 0
  let out = window.probabilities(of: images, classCount: 2) { x in
    passes += 1
    #expect(x.shape[0] <= 3 && x.shape[1] == 8 && x.shape[2] == 8)
    var p = Tensor(repeating: 0.25, shape: [x.shape[0], 8, 8, 2])
    for i in stride(from: 1, to: p.count, by: 2) { p.scalars[i] = 0.75 }
    return p
  }
  #expect(out.shape == [2, 19, 23, 2])
  #expect(out.scalars.enumerated().allSatisfy { abs($1 - ($0 % 2 == 0 ? 0.25 : 0.75)) < 1e-6 })
  // 4 x 5 windows per image (steps of at most 4 pixels), 3 per pass.
  #expect(passes == 2 * 7)
}

@Test(
  "sliding window over a real 128x256 Cityscapes frame: memory bounded by the window",
  .enabled(if: TestPaths.hasSharedData("cityscapes-mini")))
func slidingWindowRealFrame() throws {
  let dataset = try Dataset.cityscapes(
    root: TestPaths.sharedData + "/cityscapes-mini", split: "val", labels: nil)
  var iterator = PredictionIterator(dataset: dataset, workingSize: nil)
  let sample = try #require(try iterator.next())
  #expect(sample.image.shape == [1, 128, 256, 3])
  var rng = SeededGenerator(seed: 3)
  let model = UNet(.init(widths: [4, 8, 16], classCount: 19), using: &rng)
  let window = SlidingWindow(size: ImageSize(height: 64, width: 64), windowsPerPass: 2)
  // Every pass of the network sees at most two 64x64 windows, whatever the image size.
  var largest = 0
  var passes = 0
  let probabilities = window.probabilities(of: sample.image, classCount: 19) { windows in
    largest = max(largest, windows.count)
    passes += 1
    return predictProbabilities(model, images: windows)
  }
  #expect(largest <= 2 * 64 * 64 * 3)
  #expect(passes == (3 * 7 + 1) / 2)  // 3 x 7 windows, two a pass
  #expect(probabilities.shape == [1, 128, 256, 19])
  for pixel in stride(from: 0, to: 128 * 256, by: 97) {
    let sum = probabilities.scalars[(pixel * 19)..<((pixel + 1) * 19)].reduce(0, +)
    #expect(abs(sum - 1) < 1e-4, "pixel \(pixel) sums to \(sum)")
  }
  // The same through the one prediction path, and a window's interior agrees with the whole
  // image's prediction on most pixels (the network is fully convolutional).
  let windowed = predictSegmentation(model, images: sample.image, window: window)
  let whole = predictSegmentation(model, images: sample.image)
  #expect(windowed.probabilities.maxAbsoluteDifference(to: probabilities) == 0)
  let same = zip(windowed.labels, whole.labels).filter { $0 == $1 }.count
  #expect(Double(same) / Double(whole.labels.count) > 0.5, "\(same) of \(whole.labels.count)")
}
