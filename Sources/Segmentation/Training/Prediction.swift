import Tensor

/// Predicts labels and probabilities with any model; see ``Trainer/predict(_:horizontalFlip:)``.
public func predictSegmentation<M: SegmentationModel>(
  _ model: M, images: Tensor, horizontalFlip: Bool = false, window: SlidingWindow? = nil
) -> (labels: [UInt8], probabilities: Tensor) {
  let probabilities = predictProbabilities(
    model, images: images, horizontalFlip: horizontalFlip, window: window)
  let decisions = ClassDecisions(
    probabilities: probabilities.scalars, classCount: probabilities.shape.last ?? 1)
  return (decisions.labels, probabilities)
}

/// Class probabilities `[n, h, w, classCount]` of `images` with the running statistics: the one
/// prediction path of the package (`predict`, `evaluate --checkpoint`, the transfer backends,
/// the view networks of volumes).
///
/// With `horizontalFlip`, the mean of those of the images and of their mirror images (mirrored
/// back). With `window`, the network sees windows of the images instead of whole images and
/// their probabilities are blended with Gaussian weights (``SlidingWindow``); each window is
/// flipped on its own.
public func predictProbabilities<M: SegmentationModel>(
  _ model: M, images: Tensor, horizontalFlip: Bool = false, window: SlidingWindow? = nil
) -> Tensor {
  let whole = { (x: Tensor) -> Tensor in
    var probabilities = softmaxChannels(model(x))
    if horizontalFlip {
      let mirrored = flippedHorizontally(softmaxChannels(model(flippedHorizontally(x))))
      for i in probabilities.scalars.indices {
        probabilities.scalars[i] = 0.5 * (probabilities.scalars[i] + mirrored.scalars[i])
      }
    }
    return probabilities
  }
  guard let window else { return whole(images) }
  return window.probabilities(of: images, classCount: model.classCount, using: whole)
}

/// Class probabilities `[h, w, c]` predicted at the working size (or `[1, h, w, c]`), resized
/// bilinearly to an image's own size: the one path from a prediction to a file's resolution
/// (`predict` writes its arg-max, `evaluate` and the transfer backends score it).
public func probabilitiesAtImageSize(_ probabilities: Tensor, size: ImageSize) -> Tensor {
  let shape = probabilities.shape
  let image = shape.count == 4 ? probabilities.reshaped(to: Array(shape.dropFirst())) : probabilities
  if image.shape[0] == size.height && image.shape[1] == size.width { return image }
  return ImageOps.resizeBilinear(image, to: size)
}

/// Class probabilities of every image (`[h, w, c]` each), `batch` images per forward pass;
/// one `[h, w, classCount]` tensor per image.
public func predictProbabilities<M: SegmentationModel>(
  _ model: M, images: [Tensor], batch: Int, window: SlidingWindow? = nil
) -> [Tensor] {
  var result: [Tensor] = []
  var start = 0
  while start < images.count {
    let end = min(images.count, start + max(1, batch))
    let probabilities = predictProbabilities(
      model, images: stacked(images[start..<end]), window: window)
    let shape = Array(probabilities.shape.dropFirst())
    let per = shape.reduce(1, *)
    for k in 0..<(end - start) {
      result.append(
        Tensor(shape: shape, scalars: Array(probabilities.scalars[(k * per)..<((k + 1) * per)])))
    }
    start = end
  }
  return result
}

/// Stacks tensors of one shape into a batch `[n] + shape`.
///
/// - Precondition: at least one tensor; all of one shape.
public func stacked(_ tensors: some Collection<Tensor>) -> Tensor {
  guard let first = tensors.first else { preconditionFailure("stacking no tensors") }
  var scalars: [Float] = []
  scalars.reserveCapacity(first.count * tensors.count)
  for tensor in tensors {
    precondition(tensor.shape == first.shape, "stacking \(tensor.shape) onto \(first.shape)")
    scalars += tensor.scalars
  }
  return Tensor(shape: [tensors.count] + first.shape, scalars: scalars)
}

/// Mirrors NHWC images left to right.
public func flippedHorizontally(_ x: Tensor) -> Tensor {
  precondition(x.rank == 4, "flippedHorizontally expects [n, h, w, c], got \(x.shape)")
  let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  var out = Tensor(repeating: 0, shape: x.shape)
  x.scalars.withUnsafeBufferPointer { src in
    out.scalars.withUnsafeMutableBufferPointer { dst in
      for row in 0..<(n * h) {
        let base = row * w * c  // row `row` of image row / h
        for col in 0..<w {
          let from = base + col * c
          let to = base + (w - 1 - col) * c
          for k in 0..<c { dst[to + k] = src[from + k] }
        }
      }
    }
  }
  return out
}
