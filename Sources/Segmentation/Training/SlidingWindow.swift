import Foundation
import Tensor

/// Gaussian-weighted sliding-window inference, as nnU-Net's
/// `predict_sliding_window_return_logits` (Isensee et al., Nature Methods 2021).
///
/// The network sees windows of ``size`` (at most the image's size on each side) instead of the
/// whole image, so the memory of a forward pass is bounded by the window, whatever the image.
/// Window origins along an axis of `length` pixels are spread evenly from 0 to
/// `length - window` with steps of at most `stepFraction * window` (nnU-Net's
/// `compute_steps_for_sliding_window`):
/// ```
/// count  = ceil((length - window) / (stepFraction * window)) + 1
/// origin = round(i * (length - window) / (count - 1)),   i = 0 ..< count
/// ```
/// Each window's class probabilities are weighted by a Gaussian importance map centred on the
/// window (standard deviation 1/8 of the window side on each axis, peak 1), summed per pixel and
/// divided by the summed weights, so that pixels near a window's border, where the network sees
/// little context, count least. An image no larger than the window is one window: the result is
/// the plain prediction up to rounding.
public struct SlidingWindow: Sendable, Equatable {
  /// The window, in pixels of the images it slides over.
  public var size: ImageSize
  /// The largest step between windows, as a fraction of the window (nnU-Net: 0.5).
  public var stepFraction: Double
  /// Windows per forward pass.
  public var windowsPerPass: Int

  /// - Precondition: both sides of `size` positive, `stepFraction` in `(0, 1]`,
  ///   `windowsPerPass >= 1`.
  public init(size: ImageSize, stepFraction: Double = 0.5, windowsPerPass: Int = 4) {
    precondition(size.height > 0 && size.width > 0, "empty window \(size)")
    precondition(stepFraction > 0 && stepFraction <= 1, "step fraction \(stepFraction)")
    precondition(windowsPerPass >= 1, "windows per pass \(windowsPerPass)")
    self.size = size
    self.stepFraction = stepFraction
    self.windowsPerPass = windowsPerPass
  }

  /// The window origins along an axis of `length` pixels for a window of `window` pixels.
  public func origins(length: Int, window: Int) -> [Int] {
    guard length > window else { return [0] }
    let step = stepFraction * Double(window)
    let count = Int((Double(length - window) / step).rounded(.up)) + 1
    let actual = Double(length - window) / Double(count - 1)
    return (0..<count).map { Int((actual * Double($0)).rounded(.toNearestOrEven)) }
  }

  /// The Gaussian importance map of a `height x width` window, row-major, peak 1.
  public static func importance(height: Int, width: Int) -> [Float] {
    func axis(_ n: Int) -> [Double] {
      let center = Double(n - 1) / 2
      let sigma = max(Double(n) / 8, 1e-6)
      return (0..<n).map { exp(-0.5 * pow((Double($0) - center) / sigma, 2)) }
    }
    let (rows, columns) = (axis(height), axis(width))
    let peak = (rows.max() ?? 1) * (columns.max() ?? 1)
    var map = [Float](repeating: 0, count: height * width)
    for y in 0..<height {
      for x in 0..<width { map[y * width + x] = Float(rows[y] * columns[x] / peak) }
    }
    // nnU-Net replaces zeros by the smallest positive weight, so that every pixel is covered.
    let smallest = map.filter { $0 > 0 }.min() ?? 1
    return map.map { $0 > 0 ? $0 : smallest }
  }

  /// Blends the probabilities `predict` gives for the windows of `images` (`[n, h, w, c]`) into
  /// probabilities of the whole images, `[n, h, w, classCount]`.
  ///
  /// - Parameter predict: the class probabilities `[k, wh, ww, classCount]` of `k` windows
  ///   `[k, wh, ww, c]` (at most ``windowsPerPass`` of them, all of one size).
  public func probabilities(
    of images: Tensor, classCount: Int, using predict: (Tensor) -> Tensor
  ) -> Tensor {
    precondition(images.rank == 4, "sliding window over [n, h, w, c], got \(images.shape)")
    let (n, h, w, c) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
    let (wh, ww) = (min(size.height, h), min(size.width, w))
    let weights = Self.importance(height: wh, width: ww)
    let windows = origins(length: h, window: wh).flatMap { y in
      origins(length: w, window: ww).map { x in (y, x) }
    }
    var total = [Float](repeating: 0, count: h * w)
    for (y0, x0) in windows {
      for y in 0..<wh {
        for x in 0..<ww { total[(y0 + y) * w + x0 + x] += weights[y * ww + x] }
      }
    }
    var sum = [Float](repeating: 0, count: n * h * w * classCount)
    let imagePixels = h * w * c
    for image in 0..<n {
      var first = 0
      while first < windows.count {
        let group = windows[first..<min(windows.count, first + windowsPerPass)]
        // The windows of this pass, [k, wh, ww, c], cut from image `image`.
        var input = [Float]()
        input.reserveCapacity(group.count * wh * ww * c)
        for (y0, x0) in group {
          for y in 0..<wh {
            let start = image * imagePixels + ((y0 + y) * w + x0) * c
            input += images.scalars[start..<(start + ww * c)]
          }
        }
        let output = predict(Tensor(shape: [group.count, wh, ww, c], scalars: input))
        precondition(
          output.shape == [group.count, wh, ww, classCount],
          "window probabilities \(output.shape), expected \([group.count, wh, ww, classCount])")
        output.scalars.withUnsafeBufferPointer { p in
          sum.withUnsafeMutableBufferPointer { out in
            for (k, (y0, x0)) in group.enumerated() {
              for y in 0..<wh {
                for x in 0..<ww {
                  let weight = weights[y * ww + x]
                  let from = ((k * wh + y) * ww + x) * classCount  // window k, pixel (y, x)
                  let to = ((image * h + y0 + y) * w + x0 + x) * classCount
                  for j in 0..<classCount { out[to + j] += weight * p[from + j] }
                }
              }
            }
          }
        }
        first += group.count
      }
    }
    for pixel in 0..<(n * h * w) {
      let inverse = 1 / total[pixel % (h * w)]
      for j in 0..<classCount { sum[pixel * classCount + j] *= inverse }
    }
    return Tensor(shape: [n, h, w, classCount], scalars: sum)
  }
}
