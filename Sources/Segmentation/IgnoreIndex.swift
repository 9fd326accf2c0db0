import Taxonomy

/// The label value that marks a pixel (or voxel) as void: losses, metrics, pseudo-label counts
/// and teacher-student agreement skip it.
///
/// One type for the value wherever a label map is read, written, augmented or trained on. It is
/// a value of a `UInt8` label map and is coded in JSON as that number (`"ignoreIndex": 255`);
/// the tensor kernels, which know nothing of label semantics, receive ``value``.
public struct IgnoreIndex: Sendable, Hashable, Codable, CustomStringConvertible,
  ExpressibleByIntegerLiteral
{
  /// The pixel value.
  public let value: UInt8

  /// The void label `value`.
  public init(_ value: UInt8) { self.value = value }

  public init(integerLiteral value: UInt8) { self.value = value }

  /// 255, the convention of Cityscapes, CamVid, Mapillary's training ids and most label files.
  public static let standard = IgnoreIndex(255)

  /// The ignore value of a class set (``ClassSet/ignoreIndex``, `0...255` by construction).
  public init(_ classes: ClassSet) { value = UInt8(clamping: classes.ignoreIndex) }

  /// Whether `label` is void.
  public func isVoid(_ label: UInt8) -> Bool { label == value }

  /// The number of labels of `labels` that are not void.
  public func countLabeled(_ labels: some Collection<UInt8>) -> Int {
    labels.reduce(0) { $0 + ($1 == value ? 0 : 1) }
  }

  public init(from decoder: any Decoder) throws {
    value = try decoder.singleValueContainer().decode(UInt8.self)
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(value)
  }

  public var description: String { "\(value)" }
}
