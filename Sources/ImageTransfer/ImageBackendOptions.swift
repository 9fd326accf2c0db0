import Foundation
import Segmentation
import Transfer

/// The network families of the image backend.
public enum NetworkKind: String, Sendable, Codable, CaseIterable {
  case unet, deeplab
}

/// The architecture of one stage network (a stage's `network` name), overriding the default.
public struct NetworkOverride: Sendable, Equatable, Codable {
  public var model: NetworkKind?
  public var widths: [Int]?

  public init(model: NetworkKind? = nil, widths: [Int]? = nil) {
    self.model = model
    self.widths = widths
  }
}

/// The options of the ``ImageBackend`` (`"kind": "image"`, the default): the `backend` object of
/// a configuration, or `--backend-option key=value` on the command line.
///
/// Two settings of ATSO (Huo et al., CVPR 2021): semi-supervised (`source` and
/// `labeledFraction`: S is a seeded fraction of one dataset, R the rest) and domain transfer
/// (`source` and `reference`: R from the target dataset). E is `test` in both. ``keys`` documents
/// every key with its default and the jobs it affects; numbers are JSON numbers.
public struct ImageBackendOptions: BackendOptions, Equatable {
  public static let kind = "image"
  public static let summary = "2-D networks on image datasets"
  /// The defaults of the shared training keys.
  public static let trainingDefaults = TrainingOptions.Defaults(
    batch: 4, weightDecay: 1e-4, maxGradientNorm: nil, sourceIterations: 200,
    finetuneIterations: 100, unit: "images")
  public static let keys: [BackendOptionKey] = dataKeys + TrainingOptions.keys(trainingDefaults)
    + augmentationKeys
  /// The network and working size without a source model (``keys`` documents them).
  static let defaultModel = NetworkKind.unet
  static let defaultWidths = [8, 16, 32]
  static let defaultSize = ImageSize(height: 96, width: 128)
  static let dataKeys: [BackendOptionKey] = [
    .init("source", .string, default: "required", "labeled source S (a DatasetSpec)", isLocation: true),
    .init("labeledFraction", .number, default: "off", "semi-supervised: S is this seeded fraction of source, R the rest"),
    .init("splitSeed", .integer, default: "0", "seed of that split"),
    .init("reference", .string, default: "required without labeledFraction", "R (domain transfer); its labels give @R only", scope: .reference, isLocation: true),
    .init("test", .string, default: "required", "labeled test set E", scope: .evaluation, isLocation: true),
    .init("classes", .string, default: "the source's; cityscapes-19 for Cityscapes and Mapillary; a source model's", "class set the network predicts"),
    .init("model", .string, default: "unet, or a source model's", "network: unet or deeplab"),
    .init("widths", .integers, default: "8,16,32, or a source model's", "channel widths (DeepLab: 4)"),
    .init("size", .string, default: "96x128, or a source model's", "working size HxW of every image and pseudo label"),
  ]
  static let augmentationKeys: [BackendOptionKey] = [
    .init("scale", .numbers, default: "0.75,1.25", "random scale range MIN,MAX, then crop or pad to size"),
    .init("flip", .number, default: "0.5", "horizontal flip probability"),
    .init("blur", .number, default: "0", "Gaussian blur probability"),
    .init("blurSigma", .numbers, default: "0.1,2", "blur sigma range, pixels"),
    .init("brightness", .number, default: "0", "photometric jitter: brightness factor in 1 +- this"),
    .init("contrast", .number, default: "0", "photometric jitter: contrast factor in 1 +- this"),
    .init("saturation", .number, default: "0", "photometric jitter: saturation factor in 1 +- this"),
    .init("initialization", .string, default: "he", "he or pytorch: conv init of new networks", scope: .sourceTraining),
    .init("pseudoShare", .number, default: "0.5", "share of a student's batch from pseudo labels", scope: .studentTraining),
    .init("networks", .object, default: "{}", "per stage network: {\"NAME\": {\"model\": ..., \"widths\": [...]}}"),
    .init("mappings", .string, default: "none", "folders of your own class sets and mappings, DIR[:DIR] (beside the shipped)", isLocation: true),
  ]

  public var source: DatasetSpec
  public var labeledFraction: Double?
  public var splitSeed: UInt64
  public var reference: DatasetSpec?
  public var test: DatasetSpec
  /// Nil: the source's (or a source model's) class set.
  public var classes: String?
  /// Nil: U-Net (or a source model's architecture).
  public var model: NetworkKind?
  public var widths: [Int]?
  public var size: ImageSize?
  /// The shared training keys (batch, optimizer, steps, learning rates, threads).
  public var training: TrainingOptions
  public var scale: [Float]
  public var flip: Float
  public var blur: Float
  public var blurSigma: [Float]
  public var brightness: Float
  public var contrast: Float
  public var saturation: Float
  public var initialization: WeightInitialization
  public var pseudoShare: Double
  public var networks: [String: NetworkOverride]
  public var mappings: String?

  enum CodingKeys: String, CodingKey {
    case source, labeledFraction, splitSeed, reference, test, classes, model, widths, size
    case scale, flip, blur, blurSigma, brightness, contrast, saturation, initialization
    case pseudoShare, networks, mappings
  }

  /// Decodes the options; the defaults are the ones ``keys`` documents (a test holds the two
  /// together).
  public init(from decoder: any Decoder) throws {
    try decodeBackendKeys(decoder, Self.self)
    let c = try decoder.container(keyedBy: CodingKeys.self)
    source = try c.decode(DatasetSpec.self, forKey: .source)
    labeledFraction = try c.decodeIfPresent(Double.self, forKey: .labeledFraction)
    splitSeed = try c.decodeInteger(UInt64.self, forKey: .splitSeed) ?? 0
    reference = try c.decodeIfPresent(DatasetSpec.self, forKey: .reference)
    test = try c.decode(DatasetSpec.self, forKey: .test)
    classes = try c.decodeIfPresent(String.self, forKey: .classes)
    model = try c.decodeIfPresent(NetworkKind.self, forKey: .model)
    widths = try c.decodeIntegers(forKey: .widths)
    size = try c.decodeSize(forKey: .size, example: "96x128")
    training = try TrainingOptions(from: decoder, defaults: Self.trainingDefaults)
    scale = try c.decodeIfPresent([Float].self, forKey: .scale) ?? [0.75, 1.25]
    flip = try c.decodeIfPresent(Float.self, forKey: .flip) ?? 0.5
    blur = try c.decodeIfPresent(Float.self, forKey: .blur) ?? 0
    blurSigma = try c.decodeIfPresent([Float].self, forKey: .blurSigma) ?? [0.1, 2]
    brightness = try c.decodeIfPresent(Float.self, forKey: .brightness) ?? 0
    contrast = try c.decodeIfPresent(Float.self, forKey: .contrast) ?? 0
    saturation = try c.decodeIfPresent(Float.self, forKey: .saturation) ?? 0
    initialization =
      try c.decodeIfPresent(WeightInitialization.self, forKey: .initialization) ?? .he
    pseudoShare = try c.decodeIfPresent(Double.self, forKey: .pseudoShare) ?? 0.5
    networks = try c.decodeIfPresent([String: NetworkOverride].self, forKey: .networks) ?? [:]
    mappings = try c.decodeIfPresent(String.self, forKey: .mappings)
  }

  public func encode(to encoder: any Encoder) throws {
    try training.encode(to: encoder)
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(source, forKey: .source)
    try c.encodeIfPresent(labeledFraction, forKey: .labeledFraction)
    try c.encode(splitSeed, forKey: .splitSeed)
    try c.encodeIfPresent(reference, forKey: .reference)
    try c.encode(test, forKey: .test)
    try c.encodeIfPresent(classes, forKey: .classes)
    try c.encodeIfPresent(model, forKey: .model)
    try c.encodeIfPresent(widths, forKey: .widths)
    try c.encodeIfPresent(size.map { "\($0.height)x\($0.width)" }, forKey: .size)
    try c.encode(scale, forKey: .scale)
    try c.encode(flip, forKey: .flip)
    try c.encode(blur, forKey: .blur)
    try c.encode(blurSigma, forKey: .blurSigma)
    try c.encode(brightness, forKey: .brightness)
    try c.encode(contrast, forKey: .contrast)
    try c.encode(saturation, forKey: .saturation)
    try c.encode(initialization, forKey: .initialization)
    try c.encode(pseudoShare, forKey: .pseudoShare)
    if !networks.isEmpty { try c.encode(networks, forKey: .networks) }
    try c.encodeIfPresent(mappings, forKey: .mappings)
  }

  public func validate(file: String) throws {
    let fail = { (key: String, reason: String) in
      TransferError.invalid("backend." + key, reason, file: file)
    }
    if let f = labeledFraction {
      if !(f > 0 && f < 1) { throw fail("labeledFraction", "must be in (0, 1), got \(f)") }
      if reference != nil {
        throw fail("reference", "give either labeledFraction (one dataset) or reference")
      }
    } else if reference == nil {
      throw fail("reference", "missing: give reference (a DatasetSpec) or labeledFraction")
    }
    for (key, list) in [("widths", widths)] + networks.sorted(by: { $0.key < $1.key }).map({
      ("networks.\($0.key).widths", $0.value.widths)
    }) {
      guard let list else { continue }
      // The network's own bounds (a class count of 1 stands for the run's class set).
      let architecture: ModelArchitecture =
        model == .deeplab
        ? .deepLab(configuration: .init(widths: list, classCount: 1))
        : .unet(configuration: .init(widths: list, classCount: 1))
      do throws(ModelError) {
        try architecture.validate { $0 }
      } catch {
        throw TransferError.refused(error, key: "backend." + key, file: file)
      }
    }
    if let size, size.height < 16 || size.width < 16 {
      throw fail("size", "\(size.height)x\(size.width): both sides must be at least 16")
    }
    try training.validate(file: file)
    if scale.count != 2 || !(scale[0] > 0 && scale[0] <= scale[1]) {
      throw fail("scale", "\(scale) is not [MIN, MAX] with 0 < MIN <= MAX")
    }
    if blurSigma.count != 2 || !(blurSigma[0] > 0 && blurSigma[0] <= blurSigma[1]) {
      throw fail("blurSigma", "\(blurSigma) is not [MIN, MAX] with 0 < MIN <= MAX")
    }
    for (key, value) in [("flip", flip), ("blur", blur)] where !(0...1).contains(value) {
      throw fail(key, "must be a probability in [0, 1], got \(value)")
    }
    for (key, value) in [("brightness", brightness), ("contrast", contrast), ("saturation", saturation)]
    where !(0...1).contains(value) {
      throw fail(key, "must be in [0, 1], got \(value)")
    }
    if !(0...1).contains(pseudoShare) { throw fail("pseudoShare", "must be in [0, 1], got \(pseudoShare)") }
  }

  public func makeBackend(_ context: BackendContext) throws -> any TransferBackend {
    try ImageBackend(options: self, context: context)
  }

  /// `classes`, `model`, `widths` and `size` as the backend will choose them: from the source
  /// model's checkpoint, else the source dataset's class set (its list of files is read) and
  /// the documented defaults.
  public func resolvingDefaults(sourceModel: String?) -> ResolvedDefaults {
    var options = self
    var derived: [String: String] = [:]
    let imported = sourceModel.flatMap { try? SourceModelDescription(path: $0) }
    let from = imported == nil ? "default" : "from the source model"
    if options.classes == nil {
      if let name = imported?.classSetName {
        options.classes = name
        derived["classes"] = from
      } else if let name = try? source.open().classSetName {
        options.classes = ImageBackend.defaultClasses(for: name)
        derived["classes"] = "default: for labels in \(name)"
      } else {
        derived["classes"] = "default: from the source's labels (the source cannot be listed here)"
      }
    }
    if options.model == nil {
      options.model = imported?.model ?? Self.defaultModel
      derived["model"] = from
    }
    if options.widths == nil {
      options.widths = imported?.widths ?? Self.defaultWidths
      derived["widths"] = from
    }
    if options.size == nil {
      options.size = imported?.workingSize ?? Self.defaultSize
      derived["size"] = from
    }
    return ResolvedDefaults(options: options, derived: derived)
  }

  /// The training pre-processing at the working size (images are held resized to it).
  func augmentation(size: ImageSize, ignore: IgnoreIndex) -> AugmentationConfig {
    AugmentationConfig(
      workingSize: nil, scaleRange: scale[0]...scale[1], cropSize: size, flipProbability: flip,
      blurProbability: blur, blurSigmaRange: blurSigma[0]...blurSigma[1],
      jitter: PhotometricJitter(brightness: brightness, contrast: contrast, saturation: saturation),
      ignoreIndex: ignore)
  }

  /// Per-network overrides of the earlier shape (`model.NET`, `widths.NET`) move to `networks`.
  public static func upgradeSpecialKeys(_ object: inout [String: ConfigurationValue]) -> [String] {
    var changes: [String] = []
    var networks = object["networks"]?.objectValue ?? [:]
    for (key, value) in object.sorted(by: { $0.key < $1.key }) {
      for field in ["model", "widths"] where key.hasPrefix(field + ".") {
        let name = String(key.dropFirst(field.count + 1))
        var entry = networks[name]?.objectValue ?? [:]
        var moved = value
        if field == "widths", case .string(let text) = value,
          let list = OptionValueKind.integers.value(of: text)
        {
          moved = list
        }
        entry[field] = moved
        networks[name] = .object(entry)
        object[key] = nil
        changes.append("\"\(key)\" -> \"networks\": {\"\(name)\": {\"\(field)\": \(moved.text)}}")
      }
    }
    if !changes.isEmpty { object["networks"] = .object(networks) }
    return changes
  }
}
