import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Checks of the settings that come from outside (flags, configuration files, checkpoint
/// descriptions), before any work starts or any memory is allocated.
///
/// One place for every bound, shared by the `train`, `predict`, `evaluate` and `adapt-bn`
/// commands and by the typed configurations of the transfer backends. Each check throws
/// ``ModelError/invalidSetting(field:value:expected:)`` naming the field (a flag such as
/// `--learning-rate`, or `file: key`), the value and what would be accepted.
public enum SettingChecks {
  /// The largest batch accepted anywhere (memory is checked separately, see
  /// ``ModelArchitecture/checkMemory(batch:size:training:field:limit:)``).
  public static let maxBatch = 65_536
  /// The largest number of optimizer steps (a billion: years on this hardware).
  public static let maxSteps = 1_000_000_000
  /// The largest number of compute threads.
  public static let maxThreads = 1024
  /// The largest side of a working size, in pixels.
  public static let maxSide = 65_535

  /// A finite number greater than 0 (a learning rate, a scale factor).
  public static func positive<F: BinaryFloatingPoint>(_ value: F, field: String)
    throws(ModelError)
  {
    guard value.isFinite, value > 0 else {
      throw .invalidSetting(field: field, value: text(value), expected: "a finite number > 0")
    }
  }

  /// A finite number in `range` (a probability, a weight decay).
  public static func finite<F: BinaryFloatingPoint>(
    _ value: F, in range: ClosedRange<F>, field: String
  ) throws(ModelError) {
    try finite(
      value, range.contains(value), "\(text(range.lowerBound))...\(text(range.upperBound))", field)
  }

  /// A finite number in `range.lowerBound ..< range.upperBound` (SGD momentum).
  public static func finite<F: BinaryFloatingPoint>(
    _ value: F, in range: Range<F>, field: String
  ) throws(ModelError) {
    try finite(
      value, range.contains(value), "\(text(range.lowerBound))..<\(text(range.upperBound))", field)
  }

  private static func finite<F: BinaryFloatingPoint>(
    _ value: F, _ inRange: Bool, _ range: String, _ field: String
  ) throws(ModelError) {
    guard value.isFinite, inRange else {
      throw .invalidSetting(
        field: field, value: text(value), expected: "a finite number in \(range)")
    }
  }

  /// An integer in `range`.
  public static func count(_ value: Int, in range: ClosedRange<Int>, field: String)
    throws(ModelError)
  {
    guard range.contains(value) else {
      throw .invalidSetting(
        field: field, value: "\(value)",
        expected: "an integer in \(range.lowerBound)...\(range.upperBound)")
    }
  }

  /// A batch size: 1 ... ``maxBatch``.
  public static func batch(_ value: Int, field: String) throws(ModelError) {
    try count(value, in: 1...maxBatch, field: field)
  }

  /// A number of optimizer steps: 1 ... ``maxSteps``.
  public static func steps(_ value: Int, field: String) throws(ModelError) {
    try count(value, in: 1...maxSteps, field: field)
  }

  /// A number of compute threads: 1 ... ``maxThreads``.
  public static func threads(_ value: Int, field: String) throws(ModelError) {
    try count(value, in: 1...maxThreads, field: field)
  }

  /// The memory this process may use: the physical memory, or the address-space limit
  /// (`ulimit -v`) when it is lower.
  public static var availableMemory: Int {
    let pages = sysconf(Int32(_SC_PHYS_PAGES))
    let pageSize = sysconf(Int32(_SC_PAGESIZE))
    var physical = Int.max
    if pages > 0 && pageSize > 0 {
      let (product, overflow) = pages.multipliedReportingOverflow(by: pageSize)
      if !overflow { physical = product }
    }
    var limit = rlimit()
    if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max,
      limit.rlim_cur < UInt(physical)
    {
      return Int(limit.rlim_cur)
    }
    return physical
  }

  /// `bytes` in binary units (`1.5 GiB`).
  public static func bytesText(_ bytes: Int) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var value = Double(bytes)
    var unit = 0
    while value >= 1024 && unit < units.count - 1 {
      value /= 1024
      unit += 1
    }
    return unit == 0 ? "\(bytes) bytes" : String(format: "%.1f %@", value, units[unit])
  }

  static func text<F: BinaryFloatingPoint>(_ value: F) -> String {
    let double = Double(value)
    if double.isNaN { return "nan" }
    if double.isInfinite { return double < 0 ? "-inf" : "inf" }
    if double == double.rounded() && abs(double) < 1e15 { return "\(Int(double))" }
    return "\(double)"
  }
}

extension ImageSize {
  /// `HxW`, the notation of the `--size` flags (``description`` is `WxH`).
  public var heightByWidth: String { "\(height)x\(width)" }
}

extension ModelArchitecture {
  /// The smallest height and width the network accepts: a U-Net of `D + 1` widths halves its
  /// input `D` times (`2^D`), DeepLab works at output stride 8 (8).
  public var minimumInputSide: Int {
    switch self {
    case .unet(let c): 1 << max(0, min(c.widths.count - 1, 30))
    case .deepLab: 8
    }
  }

  /// Checks the structure before the network is built: widths, channels, classes, rates, and a
  /// parameter count that fits in memory. `field` names where a configuration key came from:
  /// a flag (`widths` -> `--widths`) or a file (`x.safetensors: architecture.widths`).
  ///
  /// - Throws: ``ModelError/invalidSetting(field:value:expected:)``.
  public func validate(field: (String) -> String) throws(ModelError) {
    switch self {
    case .unet(let c):
      guard (2...16).contains(c.widths.count), c.widths.allSatisfy({ (1...16_384).contains($0) })
      else {
        throw .invalidSetting(
          field: field("widths"), value: "\(c.widths)",
          expected: "2 to 16 widths (the last is the bottleneck's), each in 1...16384")
      }
      try SettingChecks.count(c.inputChannels, in: 1...1024, field: field("inputChannels"))
      try SettingChecks.count(c.classCount, in: 1...256, field: field("classCount"))
    case .deepLab(let c):
      guard c.widths.count == 4, c.widths.allSatisfy({ (1...16_384).contains($0) }) else {
        throw .invalidSetting(
          field: field("widths"), value: "\(c.widths)", expected: "4 widths, each in 1...16384")
      }
      guard c.asppRates.count <= 16, c.asppRates.allSatisfy({ (1...256).contains($0) }) else {
        throw .invalidSetting(
          field: field("asppRates"), value: "\(c.asppRates)",
          expected: "at most 16 rates, each in 1...256")
      }
      try SettingChecks.count(c.asppChannels, in: 1...16_384, field: field("asppChannels"))
      try SettingChecks.count(c.inputChannels, in: 1...1024, field: field("inputChannels"))
      try SettingChecks.count(c.classCount, in: 1...256, field: field("classCount"))
    }
    guard let count = parameterScalarCount, count <= 1 << 31 else {
      throw .invalidSetting(
        field: field("widths"), value: network,
        expected: "a network of at most 2^31 parameters (8 GiB); this one has "
          + (parameterScalarCount.map { "\($0)" } ?? "more than 2^63"))
    }
  }

  /// Checks a working size (every image is resized to it): at least ``minimumInputSide`` on
  /// each side, at most ``SettingChecks/maxSide`` and ``ImageLimits/defaultMaxPixels`` pixels.
  ///
  /// - Throws: ``ModelError/invalidSetting(field:value:expected:)`` naming `field` (`--size`).
  public func check(workingSize size: ImageSize, field: String) throws(ModelError) {
    let minimum = minimumInputSide
    guard size.height >= minimum, size.width >= minimum else {
      throw .invalidSetting(
        field: field, value: size.heightByWidth,
        expected: "at least \(minimum)x\(minimum): a \(network) "
          + (isUNet
            ? "halves the image \(minimum.trailingZeroBitCount) time"
              + (minimum == 2 ? "" : "s")
            : "works at 1/8 of the input size"))
    }
    let (pixels, overflow) = size.height.multipliedReportingOverflow(by: size.width)
    guard size.height <= SettingChecks.maxSide, size.width <= SettingChecks.maxSide, !overflow,
      pixels <= ImageLimits.defaultMaxPixels
    else {
      throw .invalidSetting(
        field: field, value: size.heightByWidth,
        expected: "at most \(SettingChecks.maxSide) pixels a side and "
          + "\(ImageLimits.defaultMaxPixels) pixels in all")
    }
  }

  /// The family and widths, without the class count (which a flag check may not know yet):
  /// `U-Net of widths 4,8`.
  private var network: String {
    switch self {
    case .unet(let c): "U-Net of widths " + c.widths.map(String.init).joined(separator: ",")
    case .deepLab(let c): "DeepLab of widths " + c.widths.map(String.init).joined(separator: ",")
    }
  }

  private var isUNet: Bool {
    if case .unet = self { return true }
    return false
  }

  /// The number of scalars of the network's tensors (parameters and batch-norm buffers), from
  /// the configuration alone; `nil` when it overflows. Equal to the sum of `tensor.count` over
  /// ``SegmentationModel/namedTensors`` of the built network (a test checks it).
  public var parameterScalarCount: Int? {
    var total = 0
    var overflowed = false
    func add(_ terms: Int...) {
      var product = 1
      for t in terms {
        let (p, o) = product.multipliedReportingOverflow(by: t)
        if o { overflowed = true }
        product = p
      }
      let (s, o) = total.addingReportingOverflow(product)
      if o { overflowed = true }
      total = s
    }
    // A convolution without bias and its batch norm (scale, offset, running mean, variance).
    func unit(_ input: Int, _ output: Int, kernel: Int = 3) {
      add(kernel, kernel, input, output)
      add(4, output)
    }
    switch self {
    case .unet(let c):
      let w = c.widths
      guard w.count >= 2 else { return nil }
      let depth = w.count - 1
      var channels = c.inputChannels
      for i in 0...depth {  // encoders, then the bottleneck
        unit(channels, w[i])
        unit(w[i], w[i])
        channels = w[i]
      }
      for i in 0..<depth {  // decoders
        let (sum, o) = w[i + 1].addingReportingOverflow(w[i])
        if o { return nil }
        unit(sum, w[i])
        unit(w[i], w[i])
      }
      add(w[0], c.classCount)  // head, with bias
      add(c.classCount)
    case .deepLab(let c):
      let w = c.widths
      guard w.count == 4 else { return nil }
      let a = c.asppChannels
      var channels = c.inputChannels
      for width in w.prefix(3) {
        unit(channels, width)
        unit(width, width)
        channels = width
      }
      unit(w[2], w[3])
      unit(w[3], w[3])
      unit(w[3], a, kernel: 1)
      for _ in c.asppRates { unit(w[3], a) }
      add(w[3], a)  // image pooling, with bias
      add(a)
      unit(a * (2 + c.asppRates.count), a, kernel: 1)
      add(a, c.classCount)  // classifier, with bias
      add(c.classCount)
    }
    return overflowed ? nil : total
  }

  /// An estimate of the memory a step needs for `batch` images of `size`: the tensors and, in
  /// training, their gradients and optimizer state (four copies), plus the activations a forward
  /// pass keeps for the backward pass (or, for inference, those live at once). About 1.1 times
  /// the measured peak for U-Nets; used to refuse settings that cannot fit, never to plan.
  /// `nil` when the product overflows.
  public func estimatedMemoryBytes(batch: Int, size: ImageSize, training: Bool) -> Int? {
    guard let parameters = parameterScalarCount else { return nil }
    // Floats kept per input pixel, level by level (a level at 1/2^i of the input has 4^-i of
    // its pixels): every unit keeps its convolution output, the normalised values and the
    // ReLU output, plus the convolution's input patches (9 input channels per output pixel).
    var perPixel = 0.0
    switch self {
    case .unet(let c):
      for (i, w) in c.widths.enumerated() {
        let next = i + 1 < c.widths.count ? c.widths[i + 1] : 0
        let level = Double(6 * w + (i + 1 < c.widths.count ? 6 * w + 9 * (w + next) : 0) + 9 * w)
        perPixel += level / Double(1 << min(2 * i, 60))
      }
      perPixel += Double(4 * c.classCount)
    case .deepLab(let c):
      let w = c.widths.map(Double.init)
      let a = Double(c.asppChannels * (3 + c.asppRates.count))
      perPixel = (15 * w[0]) / 4 + (15 * w[1]) / 16 + (15 * w[2] + 15 * w[3] + 6 * a) / 64
        + Double(4 * c.classCount)
    }
    // Calibrated on this machine (peak RSS of `train` and `predict`): for U-Nets (16,32,64,128
    // and 8,...,128) the counts above are about 3 times what is live at the peak in training
    // (445 floats a pixel measured at batch 8 and 16, 192x256) and 9 times in inference (147,
    // one 512x1024 image); for DeepLab (16,32,64,128, batch 16) about 2 times in training. With
    // these divisors the estimate is about 1.1 times the measured peak.
    let divisor: Double = isUNet ? 3 : 2
    perPixel /= training ? divisor : 3 * divisor
    let pixels = Double(batch) * Double(size.height) * Double(size.width)
    let bytes = 4 * (Double(parameters) * (training ? 4 : 1) + pixels * perPixel)
    return bytes < Double(Int.max) / 2 ? Int(bytes) : nil
  }

  /// Refuses a batch and working size whose ``estimatedMemoryBytes(batch:size:training:)``
  /// exceed `limit` (default: ``SettingChecks/availableMemory``).
  ///
  /// - Throws: ``ModelError/invalidSetting(field:value:expected:)`` naming `field` (e.g.
  ///   `--batch x --size`) with the estimate and the limit.
  public func checkMemory(
    batch: Int, size: ImageSize, training: Bool, field: String,
    limit: Int = SettingChecks.availableMemory
  ) throws(ModelError) {
    let estimate = estimatedMemoryBytes(batch: batch, size: size, training: training)
    guard let estimate, estimate <= limit else {
      throw .invalidSetting(
        field: field, value: "\(batch) x \(size.heightByWidth)",
        expected: "a batch that fits in memory: \(batch) images of \(size.heightByWidth) "
          + "for a \(network) need about "
          + (estimate.map(SettingChecks.bytesText) ?? "more than 8 EiB")
          + ", and \(SettingChecks.bytesText(limit)) are available; give a smaller batch or size")
    }
  }
}
