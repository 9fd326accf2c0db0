import Tensor

/// A training or evaluation batch: images and their per-pixel labels.
///
/// `images` is `[n, h, w, 3]` (NHWC, normalised as the model expects); `labels` holds `n * h * w`
/// class ids in the same row-major order, the ignore index marking void pixels.
public struct Batch: Sendable, Equatable {
  /// `[n, h, w, c]`.
  public var images: Tensor
  /// One class id per pixel.
  public var labels: [UInt8]

  /// Creates a batch.
  public init(images: Tensor, labels: [UInt8]) {
    self.images = images
    self.labels = labels
  }

  /// The number of images.
  public var count: Int { images.rank == 4 ? images.shape[0] : 0 }
}
