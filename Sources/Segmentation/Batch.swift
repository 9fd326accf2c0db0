import Tensor

/// A mini-batch of pre-processed samples.
public struct Batch: Sendable {
  /// The normalised images, `[n, h, w, 3]` (channels last).
  public var images: Tensor
  /// The labels, `n * h * w` class ids (or the ignore index), row-major in the same order.
  public var labels: [UInt8]
  /// The sample ids, one per image.
  public var ids: [String]

  /// - Precondition: `images` is `[n, h, w, 3]`, `labels.count == n * h * w`, `ids.count == n`.
  public init(images: Tensor, labels: [UInt8], ids: [String]) {
    precondition(images.rank == 4, "batch images are [n, h, w, c], got \(images.shape)")
    precondition(
      labels.count == images.shape[0] * images.shape[1] * images.shape[2],
      "\(labels.count) labels for images \(images.shape)")
    precondition(ids.count == images.shape[0], "\(ids.count) ids for \(images.shape[0]) images")
    self.images = images
    self.labels = labels
    self.ids = ids
  }
}
