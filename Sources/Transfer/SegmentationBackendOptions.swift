import Foundation
import Segmentation

/// The settings of a ``SegmentationBackend``, parsed from a configuration's `backend` strings.
///
/// Keys (every value is a string; `--backend-option key=value` on the command line):
///
/// | key | meaning | default |
/// |---|---|---|
/// | `kind` | `segmentation` (this backend) or `simulation` | `segmentation` |
/// | `source` | DatasetSpec of the labeled source S (required) | |
/// | `labeled-fraction` | semi-supervised: S is this seeded fraction (0 < f < 1) of `source`, R the rest | off |
/// | `split-seed` | the seed of the labeled/unlabeled split | `0` |
/// | `reference` | DatasetSpec of R (domain transfer; required without `labeled-fraction`) | |
/// | `test` | DatasetSpec of the labeled test set E (required) | |
/// | `classes` | the class set the network predicts (a `mappings/` name) | source's (cityscapes-34 and Mapillary: `cityscapes-19`) |
/// | `model` | `unet` or `deeplab` | `unet` |
/// | `widths` | channel widths, comma separated | `8,16,32` |
/// | `size` | the working size HxW: every image (and pseudo label) is resized to it | `96x128` |
/// | `batch` | images per training step | `4` |
/// | `source-iterations` | SGD steps to train M0 on S | `200` |
/// | `finetune-iterations` | SGD steps of every fine-tuning | `100` |
/// | `learning-rate` | base learning rate of M0 (poly schedule, power 0.9) | `0.01` |
/// | `finetune-learning-rate` | base learning rate of fine-tuning | `learning-rate` |
/// | `momentum`, `weight-decay` | SGD settings | `0.9`, `0.0001` |
/// | `pseudo-share` | portion of each fine-tuning batch drawn from the pseudo-labeled units | `0.5` |
/// | `flip` | horizontal flip probability in training | `0.5` |
/// | `initialization` | convolution initialisation of new networks: `he` or `pytorch` | `he` |
/// | `threads` | kernel (OpenBLAS) threads | unchanged |
/// | `mappings` | the `mappings/` directory | located by ``MappingLibrary/locateDirectory`` |
/// | `model.<network>`, `widths.<network>` | per-network overrides (stage `network=<name>`) | |
///
/// The labels of R are read only to report @R (diagnosis): a `?unlabeled` reference spec is
/// reopened with labels for that purpose when they exist; without them @R is reported as 0.
public struct SegmentationBackendOptions: Sendable, Equatable {
  public var source: DatasetSpec
  public var labeledFraction: Double?
  public var splitSeed: UInt64
  public var reference: DatasetSpec?
  public var test: DatasetSpec
  public var classes: String?
  public var model: String
  public var widths: [Int]
  public var size: ImageSize
  public var batch: Int
  public var sourceIterations: Int
  public var fineTuneIterations: Int
  public var learningRate: Float
  public var fineTuneLearningRate: Float
  public var momentum: Float
  public var weightDecay: Float
  public var pseudoShare: Double
  public var flipProbability: Float
  public var initialization: WeightInitialization
  public var threads: Int?
  public var mappings: String?
  /// Per-network overrides: `network name -> (model, widths)`.
  public var networkModels: [String: String]
  public var networkWidths: [String: [Int]]

  /// Every key this backend reads (the others are rejected, so that typos do not pass).
  public static let keys: [String] = [
    "kind", "source", "labeled-fraction", "split-seed", "reference", "test", "classes", "model",
    "widths", "size", "batch", "source-iterations", "finetune-iterations", "learning-rate",
    "finetune-learning-rate", "momentum", "weight-decay", "pseudo-share", "flip", "threads",
    "mappings", "initialization",
  ]

  /// A one-line-per-key help text for `--help`.
  public static let help = """
    Segmentation backend keys (kind=segmentation, the default):
    source=SPEC            labeled source S (required)
    labeled-fraction=F     semi-supervised: S = fraction F of source
    split-seed=N           seed of that split (0)
    reference=SPEC         R (domain transfer); labels give @R only
    test=SPEC              labeled test set E (required)
    classes=NAME           network class set (cityscapes-19 for
                           Cityscapes/Mapillary, else the source's)
    model=unet|deeplab     network (unet)
    widths=8,16,32         channel widths
    size=HxW               working size (96x128)
    batch=N                images per step (4)
    source-iterations=N    steps for a source model (200)
    finetune-iterations=N  steps per fine-tuning (100)
    learning-rate=LR       base rate, poly schedule (0.01)
    finetune-learning-rate=LR   (= learning-rate)
    momentum=M             SGD momentum (0.9)
    weight-decay=W         (0.0001)
    pseudo-share=P         batch share of pseudo labels (0.5)
    flip=P                 horizontal flip probability (0.5)
    initialization=he|pytorch   conv init of new networks (he)
    threads=N              kernel threads
    mappings=DIR[:DIR]     folders of your own class sets and mappings (beside the shipped)
    model.NET=, widths.NET=    overrides for stage network NET
    """

  /// Parses and checks the options.
  ///
  /// - Throws: `TransferError.invalidConfiguration` naming the key (`backend.<key>`) and value.
  public init(_ options: [String: String]) throws {
    func fail(_ key: String, _ reason: String) -> TransferError {
      .invalidConfiguration(file: "configuration", key: "backend.\(key)", reason: reason)
    }
    for key in options.keys.sorted()
    where !Self.keys.contains(key) && !key.hasPrefix("model.") && !key.hasPrefix("widths.") {
      throw fail(key, "unknown key (known: \(Self.keys.joined(separator: ", ")))")
    }
    func spec(_ key: String) throws -> DatasetSpec? {
      guard let text = options[key] else { return nil }
      do { return try DatasetSpec(parsing: text) } catch { throw fail(key, error.description) }
    }
    func number<T: LosslessStringConvertible>(
      _ key: String, _ value: T, _ valid: (T) -> Bool, _ expected: String
    ) throws -> T {
      guard let text = options[key] else { return value }
      guard let parsed = T(text), valid(parsed) else {
        throw fail(key, "'\(text)' is not \(expected)")
      }
      return parsed
    }
    func widthList(_ key: String, _ text: String) throws -> [Int] {
      let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
      guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) > 0 }) else {
        throw fail(key, "'\(text)' is not a comma-separated list of positive widths")
      }
      return parts.compactMap { $0 }
    }
    if let kind = options["kind"], kind != "segmentation" {
      throw fail("kind", "'\(kind)' is not segmentation")
    }
    guard let source = try spec("source") else { throw fail("source", "missing (a DatasetSpec)") }
    guard let test = try spec("test") else { throw fail("test", "missing (a DatasetSpec)") }
    self.source = source
    self.test = test
    reference = try spec("reference")
    if let text = options["labeled-fraction"] {
      guard let f = Double(text), f > 0, f < 1 else {
        throw fail("labeled-fraction", "'\(text)' is not in (0, 1)")
      }
      labeledFraction = f
      if reference != nil {
        throw fail("reference", "give either labeled-fraction (one dataset) or reference")
      }
    } else {
      labeledFraction = nil
      if reference == nil {
        throw fail("reference", "missing: give reference=SPEC or labeled-fraction=F")
      }
    }
    splitSeed = try number("split-seed", UInt64(0), { _ in true }, "a seed")
    classes = options["classes"]
    model = options["model"] ?? "unet"
    guard ["unet", "deeplab"].contains(model) else {
      throw fail("model", "'\(model)' is not unet or deeplab")
    }
    widths = try widthList("widths", options["widths"] ?? "8,16,32")
    if model == "deeplab", widths.count != 4 {
      throw fail("widths", "deeplab needs 4 widths, got \(widths.count)")
    }
    let sizeText = options["size"] ?? "96x128"
    let dims = sizeText.split(separator: "x").map { Int($0) }
    guard dims.count == 2, let h = dims[0], let w = dims[1], h >= 16, w >= 16 else {
      throw fail("size", "'\(sizeText)' is not HxW with both at least 16")
    }
    size = ImageSize(height: h, width: w)
    batch = try number("batch", 4, { $0 >= 1 }, "a positive count")
    sourceIterations = try number("source-iterations", 200, { $0 >= 1 }, "a positive count")
    fineTuneIterations = try number("finetune-iterations", 100, { $0 >= 1 }, "a positive count")
    learningRate = try number("learning-rate", Float(0.01), { $0 > 0 }, "a positive rate")
    fineTuneLearningRate = try number(
      "finetune-learning-rate", learningRate, { $0 > 0 }, "a positive rate")
    momentum = try number("momentum", Float(0.9), { $0 >= 0 && $0 < 1 }, "in [0, 1)")
    weightDecay = try number("weight-decay", Float(1e-4), { $0 >= 0 }, "non-negative")
    pseudoShare = try number("pseudo-share", 0.5, { $0 >= 0 && $0 <= 1 }, "in [0, 1]")
    flipProbability = try number("flip", Float(0.5), { $0 >= 0 && $0 <= 1 }, "in [0, 1]")
    let initializationText = options["initialization"] ?? "he"
    guard let initialization = WeightInitialization(rawValue: initializationText) else {
      throw fail("initialization", "'\(initializationText)' is not he or pytorch")
    }
    self.initialization = initialization
    threads = options["threads"] == nil ? nil : try number("threads", 1, { $0 >= 1 }, "a count")
    mappings = options["mappings"]
    networkModels = [:]
    networkWidths = [:]
    for (key, value) in options where key.hasPrefix("model.") {
      guard ["unet", "deeplab"].contains(value) else {
        throw fail(key, "'\(value)' is not unet or deeplab")
      }
      networkModels[String(key.dropFirst("model.".count))] = value
    }
    for (key, value) in options where key.hasPrefix("widths.") {
      networkWidths[String(key.dropFirst("widths.".count))] = try widthList(key, value)
    }
  }
}
