import CKernels

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Channel concatenation and split, addition, dropout and channel softmax.
///
/// Threads: fixed chunks (of pixels or of ``elementwiseChunk`` scalars) over ``kernelWidth``
/// workers. Dropout draws its mask from per-chunk generators split off the caller's generator in
/// chunk order, so the mask depends on the seed only, never on the thread count.

/// Pixels per chunk of the channel-wise kernels.
private let pixelChunk = 2048

/// Concatenates tensors along their last axis (channels).
///
/// Every part has the same leading dimensions (`[n, h, w, c_i]`); the result is
/// `[n, h, w, sum of c_i]` with the parts' channels in order.
/// - Precondition: at least one part; the leading dimensions agree.
public func concatChannels(_ parts: [Tensor]) -> Tensor {
  precondition(!parts.isEmpty, "concatChannels needs at least one tensor")
  let lead = Array(parts[0].shape.dropLast())
  for p in parts {
    precondition(
      p.rank == parts[0].rank && Array(p.shape.dropLast()) == lead,
      "concatChannels: shape \(p.shape) does not match \(parts[0].shape)")
  }
  let widths = parts.map { $0.shape[$0.rank - 1] }
  let total = widths.reduce(0, +)
  let pixels = lead.reduce(1, *)
  return Tensor.filled(shape: lead + [total]) { rb in
    guard let rBase = rb.baseAddress else { return }
    let dst = DisjointWrites(base: rBase)
    var start = 0
    for (part, cp) in zip(parts, widths) {
      let offset = start
      part.scalars.withUnsafeBufferPointer { pb in
        guard let pBase = pb.baseAddress, cp > 0 else { return }
        let src = SharedReads(base: pBase)
        let isa = KernelISA.best.cValue
        parallelChunks((pixels + pixelChunk - 1) / pixelChunk) { i in
          atso_copy_channels(
            isa, src.base, Int32(cp), 0, dst.base, Int32(total), Int32(offset), Int32(cp),
            i * pixelChunk, min(pixels, (i + 1) * pixelChunk))
        }
      }
      start += cp
    }
  }
}

/// Splits a tensor along its last axis into parts of `sizes` channels: the backward of
/// ``concatChannels(_:)``. Returns new tensors.
/// - Precondition: `sizes` are non-negative and add up to the channel count.
public func splitChannels(_ x: Tensor, sizes: [Int]) -> [Tensor] {
  precondition(x.rank >= 1, "splitChannels needs a channel axis")
  let total = x.shape[x.rank - 1]
  precondition(
    sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == total,
    "splitChannels sizes \(sizes) do not add up to \(total) channels")
  let lead = Array(x.shape.dropLast())
  let pixels = lead.reduce(1, *)
  var parts: [Tensor] = []
  var start = 0
  for cp in sizes {
    let offset = start
    parts.append(
      Tensor.filled(shape: lead + [cp]) { out in
        x.scalars.withUnsafeBufferPointer { xb in
          guard let outBase = out.baseAddress, let xBase = xb.baseAddress else { return }
          let dst = DisjointWrites(base: outBase)
          let src = SharedReads(base: xBase)
          let isa = KernelISA.best.cValue
          parallelChunks((pixels + pixelChunk - 1) / pixelChunk) { i in
            atso_copy_channels(
              isa, src.base, Int32(total), Int32(offset), dst.base, Int32(cp), 0, Int32(cp),
              i * pixelChunk, min(pixels, (i + 1) * pixelChunk))
          }
        }
      })
    start += cp
  }
  return parts
}

/// Element-wise sum `a + b`; returns a new tensor.
/// - Precondition: the shapes are equal.
public func add(_ a: Tensor, _ b: Tensor) -> Tensor {
  precondition(a.shape == b.shape, "add: shapes differ, \(a.shape) and \(b.shape)")
  return zipElements(a, b) { x, y, z, n in
    for i in 0..<n { z[i] = x[i] + y[i] }
  }
}

/// Inverted dropout: zeroes each scalar with probability `probability` and scales the others by
/// `1 / (1 - probability)`.
///
/// Returns the output and the mask (same shape, values in `{0, 1 / (1 - probability)}`), so that
/// `output = x * mask`. With `probability == 0` the mask is all ones; with 1, all zeros.
/// The mask depends only on the generator's state, not on the thread count.
/// - Precondition: `0 <= probability <= 1`.
public func dropoutForward(
  _ x: Tensor, probability: Float, using generator: inout SeededGenerator
) -> (output: Tensor, mask: Tensor) {
  precondition(
    probability >= 0 && probability <= 1, "dropout probability \(probability) not in [0, 1]")
  if probability == 0 { return (x, Tensor(repeating: 1, shape: x.shape)) }
  if probability == 1 { return (Tensor.zeros(x.shape), Tensor.zeros(x.shape)) }
  let keepScale = 1 / (1 - probability)
  let chunks = (x.count + elementwiseChunk - 1) / elementwiseChunk
  var generators: [SeededGenerator] = []
  for _ in 0..<chunks { generators.append(generator.split()) }
  let count = x.count
  let seeds = generators
  let mask = Tensor.filled(shape: x.shape) { out in
    guard let outBase = out.baseAddress else { return }
    let dst = DisjointWrites(base: outBase)
    parallelChunks(chunks) { i in
      var g = seeds[i]
      for j in (i * elementwiseChunk)..<min(count, (i + 1) * elementwiseChunk) {
        dst.base[j] = g.nextUniform() < probability ? 0 : keepScale
      }
    }
  }
  let output = zipElements(x, mask) { a, m, y, n in
    for i in 0..<n { y[i] = a[i] * m[i] }
  }
  return (output, mask)
}

/// The gradient of ``dropoutForward(_:probability:using:)``: `outputGradient * mask`.
/// - Precondition: the shapes are equal.
public func dropoutBackward(outputGradient: Tensor, mask: Tensor) -> Tensor {
  precondition(
    outputGradient.shape == mask.shape,
    "dropout gradient \(outputGradient.shape) != mask \(mask.shape)")
  return zipElements(outputGradient, mask) { dy, m, dx, n in
    for i in 0..<n { dx[i] = dy[i] * m[i] }
  }
}

/// Softmax over the last axis (channels): `exp(x - max) / sum(exp(x - max))` per pixel.
///
/// Returns a new tensor of the same shape.
public func softmaxChannels(_ logits: Tensor) -> Tensor {
  precondition(logits.rank >= 1, "softmax needs a channel axis")
  let c = logits.shape[logits.rank - 1]
  let pixels = c == 0 ? 0 : logits.count / c
  return Tensor.filled(shape: logits.shape) { out in
    logits.scalars.withUnsafeBufferPointer { xb in
      guard let outBase = out.baseAddress, let xBase = xb.baseAddress else { return }
      let dst = DisjointWrites(base: outBase)
      let src = SharedReads(base: xBase)
      parallelChunks((pixels + pixelChunk - 1) / pixelChunk) { i in
        for p in (i * pixelChunk)..<min(pixels, (i + 1) * pixelChunk) {
          let x = src.base + p * c
          let y = dst.base + p * c
          var m = -Float.infinity
          for j in 0..<c { m = max(m, x[j]) }
          var sum: Float = 0
          for j in 0..<c {
            let e = expf(x[j] - m)
            y[j] = e
            sum += e
          }
          let inverse = 1 / sum
          for j in 0..<c { y[j] *= inverse }
        }
      }
    }
  }
}
