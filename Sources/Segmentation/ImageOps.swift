import Foundation
import Tensor

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

  /// Photometric adjustment of a `[h, w, 3]` tensor of raw `0...255` RGB values, with the
  /// semantics of torchvision's `adjust_brightness`, `adjust_contrast` and
  /// `adjust_saturation`, applied in that order, each result clamped to `0...255`:
  /// ```
  /// brightness: x = b * x
  /// contrast:   x = m + c * (x - m)      m: the mean grey level of the image
  /// saturation: x = g + s * (x - g)      g: the pixel's grey level (0.299 R + 0.587 G + 0.114 B)
  /// ```
  /// Factors of 1 leave the image unchanged.
  public static func adjusted(
    _ image: Tensor, brightness b: Float, contrast c: Float, saturation s: Float
  ) -> Tensor {
    precondition(image.rank == 3 && image.shape[2] == 3, "expected [h, w, 3], got \(image.shape)")
    var x = image.scalars
    let pixels = x.count / 3
    func grey(_ i: Int) -> Float { 0.299 * x[3 * i] + 0.587 * x[3 * i + 1] + 0.114 * x[3 * i + 2] }
    if b != 1 { for i in x.indices { x[i] = min(255, max(0, b * x[i])) } }
    if c != 1 {
      var total: Double = 0
      for i in 0..<pixels { total += Double(grey(i)) }
      let mean = Float(total / Double(max(1, pixels)))
      for i in x.indices { x[i] = min(255, max(0, mean + c * (x[i] - mean))) }
    }
    if s != 1 {
      for i in 0..<pixels {
        let g = grey(i)
        for k in 0..<3 { x[3 * i + k] = min(255, max(0, g + s * (x[3 * i + k] - g))) }
      }
    }
    return Tensor(shape: image.shape, scalars: x)
  }
}
