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

  /// The number of images.
  public var count: Int { images.rank == 4 ? images.shape[0] : 0 }
}
