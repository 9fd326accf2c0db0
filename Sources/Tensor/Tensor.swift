/// A dense, row-major array of `Float` with value semantics.
///
/// Image tensors use the channels-last layout (NHWC): `shape == [n, h, w, c]`, and the scalar of
/// image `b`, row `y`, column `x`, channel `k` sits at `((b * h + y) * w + x) * c + k`. Channels-last
/// keeps a pixel's channels contiguous, so a convolution is one GEMM over an im2col matrix whose
/// rows are pixels, with no transposes (PyTorch's oneDNN is also 1.2-1.5x faster in this layout).
///
/// Storage is a Swift `Array`, which gives copy-on-write, `Sendable` and checked indexing.
public struct Tensor: Sendable, Equatable {
  /// The extent of each dimension, outermost first.
  public private(set) var shape: [Int]
  /// The scalars in row-major order; `scalars.count == shape.reduce(1, *)`.
  public var scalars: [Float]

  /// Creates a tensor of `shape` with every scalar equal to `value`.
  ///
  /// - Precondition: every dimension is non-negative.
  public init(repeating value: Float, shape: [Int]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    self.shape = shape
    self.scalars = Array(repeating: value, count: shape.reduce(1, *))
  }

  /// Creates a tensor of `shape` from `scalars` in row-major order.
  ///
  /// - Precondition: `scalars.count == shape.reduce(1, *)`.
  public init(shape: [Int], scalars: [Float]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    precondition(
      scalars.count == shape.reduce(1, *),
      "\(scalars.count) scalars do not fill shape \(shape)")
    self.shape = shape
    self.scalars = scalars
  }

  /// Creates a tensor of zeros.
  public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }

  /// The number of scalars.
  public var count: Int { scalars.count }

  /// The number of dimensions.
  public var rank: Int { shape.count }

  /// Returns the same scalars viewed with a new shape.
  ///
  /// - Precondition: the new shape has as many scalars as the old one.
  public func reshaped(to newShape: [Int]) -> Tensor {
    Tensor(shape: newShape, scalars: scalars)
  }

  /// Gives the tensor a new shape with the same number of scalars.
  public mutating func reshape(to newShape: [Int]) {
    precondition(
      newShape.reduce(1, *) == scalars.count, "cannot reshape \(shape) to \(newShape)")
    shape = newShape
  }

  /// Reads or writes the scalar at a multi-dimensional index.
  public subscript(_ index: Int...) -> Float {
    get { scalars[offset(of: index)] }
    set { scalars[offset(of: index)] = newValue }
  }

  @inline(__always)
  func offset(of index: [Int]) -> Int {
    precondition(index.count == shape.count, "index \(index) does not match shape \(shape)")
    var flat = 0
    for (i, d) in zip(index, shape) {
      precondition(i >= 0 && i < d, "index \(index) out of range for shape \(shape)")
      flat = flat * d + i
    }
    return flat
  }

  /// The element-wise maximum of the absolute difference to `other`.
  ///
  /// - Precondition: the shapes are equal.
  public func maxAbsoluteDifference(to other: Tensor) -> Float {
    precondition(shape == other.shape, "shapes differ: \(shape) and \(other.shape)")
    var m: Float = 0
    for i in scalars.indices { m = max(m, abs(scalars[i] - other.scalars[i])) }
    return m
  }
}

extension Tensor: CustomStringConvertible {
  public var description: String {
    let head = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
    return "Tensor(shape: \(shape), scalars: [\(head)\(scalars.count > 8 ? ", ..." : "")])"
  }
}
