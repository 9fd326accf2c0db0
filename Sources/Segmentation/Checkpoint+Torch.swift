import Foundation
import Tensor

/// PyTorch `state_dict` names and layouts of this package's networks, as safetensors files.
///
/// A PyTorch network built like ours (`nn.Sequential(conv, bn, relu)` for a ``ConvBNReLU``,
/// `nn.Sequential(conv, bn, relu, conv, bn, relu)` for a ``DoubleConv``) names its tensors
/// by module index. For the U-Net these are exactly the keys of the reference network
/// (`shared/bench/torch_reference_unet.py`, `RefUNet`), for the DeepLab those of
/// `scripts/torch_networks.py`'s `DeepLab`:
/// ```
/// ours                                   PyTorch
/// enc1.conv1.conv.weight [3,3,in,out]    enc1.0.weight [out,in,3,3]
/// enc1.conv1.norm.scale / .offset        enc1.1.weight / .bias
/// enc1.conv1.norm.running_mean           enc1.1.running_mean
/// enc1.conv1.norm.running_variance       enc1.1.running_var
/// (none)                                 enc1.1.num_batches_tracked (I64, shape [])
/// enc1.conv2.conv / .norm                enc1.3 / enc1.4
/// bottleneck.*                           bott.*
/// head.weight [1,1,in,classes], .bias    head.weight [classes,in,1,1], .bias
/// stem1.conv / stem1.norm (DeepLab)      stem1.0 / stem1.1
/// aspp.pooling.weight, classifier.*      the same names
/// ```
/// An export holds weights and batch-norm buffers only (no optimizer state). Its
/// `__metadata__` says what PyTorch cannot: the architecture (``architectureKey``, the JSON of
/// ``ModelArchitecture``), the class set (``classSetKey``) and the input the network expects
/// (``inputKey``). `num_batches_tracked` is the checkpoint's step count (0 without a training
/// state); PyTorch reads it only for batch norm with `momentum=None`.
public enum TorchStateDict {
  /// The metadata key of the architecture's JSON.
  public static let architectureKey = "atso.architecture"
  /// The metadata key of the class set name.
  public static let classSetKey = "atso.class_set"
  /// The metadata key of the input description.
  public static let inputKey = "atso.input"
  /// The metadata key of the working size the network was trained at, `HxW` (e.g. `96x128`),
  /// when known.
  public static let workingSizeKey = "atso.working_size"

  /// What the network reads, as stored under ``inputKey``.
  public static var inputDescription: String {
    let n = Normalization.imageNet
    func list(_ v: [Float]) -> String { v.map { "\($0)" }.joined(separator: ", ") }
    return "float32 NCHW RGB, (pixel / 255 - mean) / std with mean [\(list(n.mean))], "
      + "std [\(list(n.standardDeviation))]; logits NCHW"
  }

  /// The PyTorch name of one of our tensor names (see the table above).
  public static func torchName(_ name: String) -> String {
    var parts = name.split(separator: ".").map(String.init)
    guard parts.count >= 2 else { return name }
    let leaf = parts.removeLast()
    let layer = parts.removeLast()
    let torchLeaf =
      ["scale": "weight", "offset": "bias", "running_variance": "running_var"][leaf] ?? leaf
    if layer == "conv" || layer == "norm" {
      // A ConvBNReLU unit; inside a DoubleConv its position shifts by 3 for the second unit.
      var index = layer == "conv" ? 0 : 1
      if let unit = parts.last, unit == "conv1" || unit == "conv2" {
        parts.removeLast()
        if unit == "conv2" { index += 3 }
      }
      parts.append(String(index))
    } else {
      parts.append(layer)
    }
    if parts.first == "bottleneck" { parts[0] = "bott" }
    return (parts + [torchLeaf]).joined(separator: ".")
  }

  /// The safetensors bytes of `checkpoint`'s network under PyTorch names and layouts;
  /// `workingSize` (the training run's) is recorded under ``workingSizeKey`` when given.
  public static func export(_ checkpoint: Checkpoint, workingSize: ImageSize? = nil) -> Data {
    var floats: [(name: String, tensor: Tensor)] = []
    var counters: [(name: String, shape: [Int], values: [Int64])] = []
    let step = Int64(checkpoint.description.training?.step ?? 0)
    for name in checkpoint.names {
      guard let tensor = checkpoint.tensors[name] else { continue }
      let torch = torchName(name)
      floats.append((torch, tensor.rank == 4 ? tensor.permuted([3, 2, 0, 1]) : tensor))
      if name.hasSuffix(".norm.running_variance") {
        let module = torch.dropLast("running_var".count)
        counters.append((module + "num_batches_tracked", [], [step]))
      }
    }
    var metadata = [
      classSetKey: checkpoint.description.classSetName, inputKey: inputDescription,
      "format": "pt",
    ]
    if let workingSize { metadata[workingSizeKey] = "\(workingSize.height)x\(workingSize.width)" }
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    if let json = try? encoder.encode(checkpoint.description.architecture) {
      metadata[architectureKey] = String(decoding: json, as: UTF8.self)
    }
    return SafeTensors.encode(floats, integers: counters, metadata: metadata)
  }

  /// Writes ``export(_:workingSize:)`` of `checkpoint` to `path`, atomically.
  ///
  /// - Throws: ``ModelError/fileAccess(path:reason:)``.
  public static func write(_ checkpoint: Checkpoint, workingSize: ImageSize? = nil, to path: String)
    throws(ModelError)
  {
    try writeAtomically(export(checkpoint, workingSize: workingSize), to: path)
  }

  /// Reads a PyTorch `state_dict` saved as safetensors and returns our checkpoint of it.
  ///
  /// The architecture comes from the file's ``architectureKey`` metadata when present (a file
  /// that ``export(_:)`` wrote), else from the key names and shapes: `bott.0.weight` marks a
  /// U-Net, `stem1.0.weight` a DeepLab, whose dilation rates no shape records (`asppRates`).
  /// Every tensor of the network must be present with its shape, and no other tensor may be
  /// (`num_batches_tracked` aside), as PyTorch's `load_state_dict(strict=True)` asks.
  /// - Parameters:
  ///   - classSetName: the class set the logits index; default the file's ``classSetKey``.
  ///   - asppRates: a DeepLab's ASPP rates, used only when the file does not record its
  ///     architecture.
  /// - Throws: ``ModelError/fileAccess(path:reason:)``,
  ///   ``ModelError/malformedCheckpoint(path:reason:)`` (not safetensors, a dtype other than
  ///   F32, a network we cannot recognise, a missing class set or rates) or
  ///   ``ModelError/checkpointMismatch(path:reason:)`` (missing, extra or misshapen tensors).
  public static func importCheckpoint(
    from path: String, classSetName: String? = nil, asppRates: [Int]? = nil
  ) throws(ModelError) -> Checkpoint {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
      throw .fileAccess(path: path, reason: "cannot read: \(error.localizedDescription)")
    }
    let (list, metadata) = try SafeTensors.decode(data, path: path, skipping: ["I64"])
    var tensors = Dictionary(list.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    for name in tensors.keys where name.hasSuffix(".num_batches_tracked") {
      tensors[name] = nil
    }
    guard metadata[Checkpoint.descriptionKey] == nil else {
      throw .malformedCheckpoint(
        path: path, reason: "this is an atso-transfer checkpoint already, not a PyTorch state_dict")
    }
    guard let classSet = classSetName ?? metadata[classSetKey] else {
      throw .malformedCheckpoint(
        path: path,
        reason: "the file does not name the class set its logits index; give it (--classes)")
    }
    let architecture = try self.architecture(
      of: tensors, metadata: metadata, asppRates: asppRates, path: path)
    var generator = SeededGenerator(seed: 0)
    var model = architecture.makeModel(using: &generator)
    var converted: [String: Tensor] = [:]
    var used = Set<String>()
    for entry in model.namedTensors {
      let torch = torchName(entry.name)
      guard let saved = tensors[torch] else {
        throw .checkpointMismatch(
          path: path, reason: "missing tensor '\(torch)' (\(architecture.summary))")
      }
      let value = saved.rank == 4 ? saved.permuted([2, 3, 1, 0]) : saved
      guard value.shape == entry.tensor.shape else {
        let expected = entry.tensor.rank == 4 ? entry.tensor.permuted([3, 2, 0, 1]) : entry.tensor
        throw .checkpointMismatch(
          path: path,
          reason: "tensor '\(torch)' has shape \(saved.shape), expected \(expected.shape) "
            + "(\(architecture.summary))")
      }
      converted[entry.name] = value
      used.insert(torch)
    }
    let extra = tensors.keys.filter { !used.contains($0) }.sorted()
    guard extra.isEmpty else {
      throw .checkpointMismatch(
        path: path,
        reason: "unexpected tensor(s) \(extra.prefix(5).map { "'\($0)'" }.joined(separator: ", "))"
          + (extra.count > 5 ? " and \(extra.count - 5) more" : "")
          + " for \(architecture.summary)")
    }
    model.parameters = converted
    return Checkpoint(model: model, classSetName: classSet)
  }

  /// The architecture recorded in `metadata`, else the one the tensor names and shapes imply.
  static func architecture(
    of tensors: [String: Tensor], metadata: [String: String], asppRates: [Int]?, path: String
  ) throws(ModelError) -> ModelArchitecture {
    func fail(_ reason: String) -> ModelError { .malformedCheckpoint(path: path, reason: reason) }
    if let json = metadata[architectureKey] {
      guard let recorded = try? JSONDecoder().decode(ModelArchitecture.self, from: Data(json.utf8))
      else { throw fail("metadata '\(architectureKey)' is not an architecture: \(json)") }
      return recorded
    }
    /// `[out, in, r, s]` of a convolution weight.
    func convShape(_ name: String) throws(ModelError) -> [Int] {
      guard let t = tensors[name] else { throw fail("no tensor '\(name)'") }
      guard t.rank == 4 else { throw fail("tensor '\(name)' has shape \(t.shape), not 4-D") }
      return t.shape
    }
    if tensors["bott.0.weight"] != nil {
      var widths: [Int] = []
      while tensors["enc\(widths.count + 1).0.weight"] != nil {
        widths.append(try convShape("enc\(widths.count + 1).0.weight")[0])
      }
      guard !widths.isEmpty else { throw fail("a U-Net state_dict without 'enc1.0.weight'") }
      widths.append(try convShape("bott.0.weight")[0])
      return .unet(
        configuration: .init(
          inputChannels: try convShape("enc1.0.weight")[1], widths: widths,
          classCount: try convShape("head.weight")[0]))
    }
    if tensors["stem1.0.weight"] != nil {
      var rateCount = 0
      while tensors["aspp.atrous\(rateCount + 1).0.weight"] != nil { rateCount += 1 }
      guard let rates = asppRates else {
        throw fail(
          "a DeepLab state_dict does not record its \(rateCount) ASPP dilation rates; "
            + "give them (--aspp-rates, e.g. 2,4,6)")
      }
      guard rates.count == rateCount else {
        throw fail("\(rates.count) ASPP rates given, but the file has \(rateCount) atrous branches")
      }
      return .deepLab(
        configuration: .init(
          inputChannels: try convShape("stem1.0.weight")[1],
          widths: [
            try convShape("stem1.0.weight")[0], try convShape("stem3.0.weight")[0],
            try convShape("stem5.0.weight")[0], try convShape("stage4.0.weight")[0],
          ],
          asppChannels: try convShape("aspp.pointwise.0.weight")[0], asppRates: rates,
          classCount: try convShape("classifier.weight")[0]))
    }
    let some = tensors.keys.sorted().prefix(4).map { "'\($0)'" }.joined(separator: ", ")
    throw fail(
      "neither the reference U-Net (enc1.0.weight ... bott.0.weight ... head.weight) nor the "
        + "DeepLab (stem1.0.weight ... classifier.weight) of scripts/torch_networks.py; "
        + "keys: \(some)\(tensors.count > 4 ? ", ..." : "")")
  }
}

extension Tensor {
  /// The tensor with its axes reordered: axis `i` of the result is axis `axes[i]` of `self`.
  ///
  /// - Precondition: `axes` is a permutation of `0..<rank`.
  func permuted(_ axes: [Int]) -> Tensor {
    precondition(axes.sorted() == Array(0..<rank), "axes \(axes) for rank \(rank)")
    let newShape = axes.map { shape[$0] }
    var strides = [Int](repeating: 1, count: rank)
    for i in stride(from: rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] }
    let sourceStrides = axes.map { strides[$0] }
    var result = [Float](repeating: 0, count: count)
    var index = [Int](repeating: 0, count: rank)
    for i in 0..<count {
      var offset = 0
      for d in 0..<rank { offset += index[d] * sourceStrides[d] }
      result[i] = scalars[offset]
      var d = rank - 1
      while d >= 0 {
        index[d] += 1
        if index[d] < newShape[d] { break }
        index[d] = 0
        d -= 1
      }
    }
    return Tensor(shape: newShape, scalars: result)
  }
}
