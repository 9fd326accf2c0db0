import Tensor

extension ModelArchitecture {
  /// One readable line: the family, its widths and the class count, e.g.
  /// `U-Net widths 16,32,64,128, 3 -> 19 classes`.
  public var summary: String {
    func list(_ values: [Int]) -> String { values.map(String.init).joined(separator: ",") }
    switch self {
    case .unet(let c):
      return "U-Net widths \(list(c.widths)), \(c.inputChannels) -> \(c.classCount) classes"
    case .deepLab(let c):
      return "DeepLab widths \(list(c.widths)), ASPP \(c.asppChannels) channels at rates "
        + "\(list(c.asppRates)), \(c.inputChannels) -> \(c.classCount) classes"
    }
  }

  /// ``summary`` with the parameter count, e.g. `U-Net widths 16,32,64,128, 3 -> 19 classes,
  /// 488,307 parameters`.
  public var summaryWithParameters: String {
    var digits = String(trainableScalarCount)
    var grouped = ""
    while digits.count > 3 {
      grouped = "," + digits.suffix(3) + grouped
      digits.removeLast(3)
    }
    return "\(summary), \(digits + grouped) parameters"
  }

  /// The number of trainable scalars of a network of this architecture.
  public var trainableScalarCount: Int {
    var generator = SeededGenerator(seed: 0)
    return makeModel(using: &generator).trainableScalarCount
  }
}
