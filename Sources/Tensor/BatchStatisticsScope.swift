/// Whose rows training-mode batch norm takes its statistics over: this process's alone, or
/// those of every replica of a data-parallel step (synchronized batch norm).
///
/// With replicas, each per-channel total of the kernels (the sums of `x`, of `(x - mean)^2`,
/// and in the backward pass of `dy` and `dy * xhat`) and the row count are summed over the
/// replicas by `sum` before they are used, so every replica normalizes with the statistics of
/// the whole batch. `sum` must return the same values on every replica (a fixed order) and
/// must not throw: a replica that fails returns its own totals and records the failure for its
/// caller (see `Trainer`).
public struct BatchStatisticsScope: Sendable {
  let sumOverReplicas: (@Sendable ([Double]) -> [Double])?

  /// This process's rows only (training in one process).
  public static let local = BatchStatisticsScope(sumOverReplicas: nil)

  /// The rows of every replica; `sum` adds per-channel totals over the replicas.
  public static func replicas(sum: @escaping @Sendable ([Double]) -> [Double]) -> Self {
    BatchStatisticsScope(sumOverReplicas: sum)
  }

  /// True for ``local``.
  public var isLocal: Bool { sumOverReplicas == nil }

  /// `totals` and `rows` over the scope: summed over the replicas, or as they are.
  func combine(_ totals: [Double], rows: Int) -> (totals: [Double], rows: Int) {
    guard let sumOverReplicas else { return (totals, rows) }
    let combined = sumOverReplicas(totals + [Double(rows)])
    guard combined.count == totals.count + 1, let count = combined.last else {
      return (totals, rows)
    }
    return (Array(combined.dropLast()), Int(count.rounded()))
  }
}
