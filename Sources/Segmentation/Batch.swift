import Tensor

/// A training or evaluation mini-batch of pre-processed samples.
///
/// `images` is `[n, h, w, 3]` (NHWC, normalised as the model expects); `labels` holds `n * h * w`
/// class ids in the same row-major order, the ignore index marking void pixels. The shapes are
/// validated by the consumer (``Trainer`` throws ``ModelError/invalidBatch(reason:)``), so that a
/// bad batch built from outside data is an error, not a trap.
public struct Batch: Sendable, Equatable {
  /// The normalised images, `[n, h, w, c]` (channels last).
  public var images: Tensor
  /// One class id per pixel.
  public var labels: [UInt8]
  /// The sample ids, one per image (empty when the batch was not built from a dataset).
  public var ids: [String]

  /// Creates a batch.
  public init(images: Tensor, labels: [UInt8], ids: [String] = []) {
    self.images = images
    self.labels = labels
    self.ids = ids
  }

  /// A batch of the images at some of its positions: a position without one (nil, an image
  /// that another data-parallel replica decodes) holds a zero image whose pixels are all
  /// `void`, as does every pixel of an image without labels. Each image is `[h, w, c]`.
  ///
  /// - Precondition: at least one image; all of one shape.
  public init(positions: [(image: Tensor, label: [UInt8]?)?], void: UInt8, ids: [String] = []) {
    guard let shape = positions.lazy.compactMap({ $0?.image.shape }).first else {
      preconditionFailure("a batch holds at least one image")
    }
    let (imageCount, pixels) = (shape.reduce(1, *), shape[0] * shape[1])
    var scalars = [Float](repeating: 0, count: positions.count * imageCount)
    var labels = [UInt8](repeating: void, count: positions.count * pixels)
    for (position, item) in positions.enumerated() {
      guard let item else { continue }
      precondition(item.image.shape == shape, "batching \(item.image.shape) with \(shape)")
      scalars.replaceSubrange(
        (position * imageCount)..<((position + 1) * imageCount), with: item.image.scalars)
      if let label = item.label {
        precondition(label.count == pixels, "\(label.count) labels for \(pixels) pixels")
        labels.replaceSubrange((position * pixels)..<((position + 1) * pixels), with: label)
      }
    }
    self.init(images: Tensor(shape: [positions.count] + shape, scalars: scalars), labels: labels, ids: ids)
  }

  /// The number of images.
  public var count: Int { images.rank == 4 ? images.shape[0] : 0 }
}
