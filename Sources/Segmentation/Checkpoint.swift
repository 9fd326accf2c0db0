import Foundation
import Tensor

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// The safetensors file format (huggingface/safetensors), `F32` tensors only.
///
/// ```
/// [8 bytes: N, little-endian UInt64] [N bytes: JSON header, padded with spaces] [data]
/// header = {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
///           "__metadata__": {"key": "string value", ...}}
/// ```
/// Offsets are relative to the start of the data; tensors are stored back to back, in the order
/// given, as little-endian float32.
public enum SafeTensors {
  /// The largest accepted JSON header (PyPI safetensors' limit: 100 MB).
  public static let maxHeaderBytes = 100_000_000

  /// Bytes per element of the safetensors dtypes, for the layout of entries that are skipped.
  static let elementBytes: [String: Int] = [
    "F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
    "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
  ]

  /// Encodes named tensors, `I64` integer tensors (stored after them) and string metadata.
  public static func encode(
    _ tensors: [(name: String, tensor: Tensor)],
    integers: [(name: String, shape: [Int], values: [Int64])] = [], metadata: [String: String]
  ) -> Data {
    var header: [String: Any] = [:]
    var offset = 0
    func add(_ name: String, _ dtype: String, _ shape: [Int], bytes: Int) {
      header[name] =
        ["dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]]
        as [String: Any]
      offset += bytes
    }
    for (name, tensor) in tensors { add(name, "F32", tensor.shape, bytes: 4 * tensor.count) }
    for (name, shape, values) in integers { add(name, "I64", shape, bytes: 8 * values.count) }
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    // Serialising plain strings, integers and arrays cannot fail.
    var json =
      (try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
      ?? Data("{}".utf8)
    while json.count % 8 != 0 { json.append(0x20) }
    var data = Data(capacity: 8 + json.count + offset)
    withUnsafeBytes(of: UInt64(json.count).littleEndian) { data.append(contentsOf: $0) }
    data.append(json)
    for (_, tensor) in tensors { data.append(tensor.littleEndianBytes()) }
    for (_, _, values) in integers {
      for value in values { withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) } }
    }
    return data
  }

  /// Decodes a safetensors file's bytes; `path` names the file in errors. Entries whose dtype is
  /// in `skippedDTypes` (e.g. PyTorch's `I64` `num_batches_tracked`) are left out.
  ///
  /// - Returns: the tensors in data order, and the metadata.
  /// - Throws: ``ModelError/malformedCheckpoint(path:reason:)`` for a truncated file, a bad
  ///   header, a dtype other than `F32`, or offsets that do not match the shapes.
  public static func decode(_ data: Data, path: String, skipping skippedDTypes: Set<String> = [])
    throws(ModelError) -> (tensors: [(name: String, tensor: Tensor)], metadata: [String: String])
  {
    func fail(_ reason: String) -> ModelError { .malformedCheckpoint(path: path, reason: reason) }
    let bytes = [UInt8](data)
    guard bytes.count >= 8 else { throw fail("file of \(bytes.count) bytes has no header length") }
    var headerLength: UInt64 = 0
    for i in 0..<8 { headerLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    guard headerLength <= UInt64(bytes.count - 8) else {
      throw fail("header length \(headerLength) exceeds the file (\(bytes.count) bytes): truncated?")
    }
    guard headerLength <= UInt64(maxHeaderBytes) else {
      throw fail("header length \(headerLength) exceeds the \(maxHeaderBytes)-byte limit")
    }
    let dataStart = 8 + Int(headerLength)
    let dataSize = bytes.count - dataStart
    let object: Any
    do {
      object = try JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart]))
    } catch {
      throw fail("the header (bytes 8..<\(dataStart)) is not JSON")
    }
    guard let header = object as? [String: Any] else { throw fail("header is not a JSON object") }
    var metadata: [String: String] = [:]
    if let raw = header["__metadata__"] {
      guard let m = raw as? [String: String] else {
        throw fail("__metadata__ is not string to string")
      }
      metadata = m
    }
    // Every entry, skipped ones included, takes its place in the layout check; only F32 ones
    // are decoded.
    var layout: [(name: String, begin: Int, end: Int)] = []
    var entries: [(name: String, shape: [Int], begin: Int, end: Int)] = []
    for (name, value) in header where name != "__metadata__" {
      guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
        let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int],
        offsets.count == 2
      else { throw fail("entry '\(name)' lacks dtype, shape or data_offsets") }
      let skipped = skippedDTypes.contains(dtype)
      guard skipped || dtype == "F32" else {
        throw fail("tensor '\(name)' has dtype \(dtype); only F32 is supported")
      }
      // The byte count of the shape, refusing negative dimensions and overflow before any
      // allocation.
      var byteCount = skipped ? (Self.elementBytes[dtype] ?? 1) : 4
      for dimension in shape {
        let (product, overflow) = byteCount.multipliedReportingOverflow(by: dimension)
        guard dimension >= 0, !overflow, product <= dataSize else {
          throw fail(
            "tensor '\(name)' has shape \(shape), which does not fit the \(dataSize) bytes of data")
        }
        byteCount = product
      }
      guard offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataSize,
        offsets[1] - offsets[0] == byteCount || (skipped && Self.elementBytes[dtype] == nil)
      else {
        throw fail(
          "tensor '\(name)' of shape \(shape) (\(byteCount) bytes) has data_offsets \(offsets) "
            + "(data is \(dataSize) bytes)")
      }
      layout.append((name, offsets[0], offsets[1]))
      if !skipped { entries.append((name, shape, offsets[0], offsets[1])) }
    }
    entries.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }
    layout.sort { ($0.begin, $0.name) < ($1.begin, $1.name) }
    // As PyPI safetensors requires: tensors back to back from offset 0 to the end of the file.
    var end = 0
    for entry in layout {
      guard entry.begin == end else {
        throw fail(
          "tensor '\(entry.name)' starts at data offset \(entry.begin), expected \(end) "
            + "(tensors must be stored back to back)")
      }
      end = entry.end
    }
    guard end == dataSize else {
      throw fail("the tensors end at data offset \(end) but the data is \(dataSize) bytes")
    }
    var tensors: [(name: String, tensor: Tensor)] = []
    tensors.reserveCapacity(entries.count)
    bytes.withUnsafeBytes { raw in
      for entry in entries {
        let count = (entry.end - entry.begin) / 4
        var scalars = [Float](repeating: 0, count: count)
        let base = dataStart + entry.begin
        for i in 0..<count {
          scalars[i] = Float(
            bitPattern: UInt32(
              littleEndian: raw.loadUnaligned(fromByteOffset: base + 4 * i, as: UInt32.self)))
        }
        tensors.append((entry.name, Tensor(shape: entry.shape, scalars: scalars)))
      }
    }
    return (tensors, metadata)
  }
}

/// The training state saved beside the weights, enough to resume a run exactly.
public struct TrainingState: Codable, Equatable, Sendable {
  /// The number of optimizer steps taken.
  public var step: Int
  /// The optimizer's hyperparameters (its state tensors are stored beside the weights, see
  /// ``Checkpoint`` and ``TrainingOptimizer``).
  public var optimizer: TrainingOptimizer
  /// The learning-rate schedule.
  public var schedule: PolySchedule
  /// The training loop's random generator (augmentation, shuffling).
  public var generator: SeededGenerator
  /// Where the training data loader stands (`nil` in checkpoints of loops without one).
  public var loader: LoaderState?

  /// Creates a training state.
  public init(
    step: Int, optimizer: TrainingOptimizer, schedule: PolySchedule, generator: SeededGenerator,
    loader: LoaderState? = nil
  ) {
    self.step = step
    self.optimizer = optimizer
    self.schedule = schedule
    self.generator = generator
    self.loader = loader
  }
}

/// The JSON description of a checkpoint.
public struct CheckpointDescription: Codable, Equatable, Sendable {
  /// The format version (1).
  public var formatVersion: Int
  /// The network to rebuild.
  public var architecture: ModelArchitecture
  /// The name of the class set the logits index (e.g. `cityscapes-19`).
  public var classSetName: String
  /// The training state, if the checkpoint can resume training.
  public var training: TrainingState?
  /// The size every image was resized to in training (nil: not recorded, e.g. older files).
  public var workingSize: ImageSize?

  /// Creates a description.
  public init(
    architecture: ModelArchitecture, classSetName: String, training: TrainingState? = nil,
    workingSize: ImageSize? = nil
  ) {
    formatVersion = 1
    self.architecture = architecture
    self.classSetName = classSetName
    self.training = training
    self.workingSize = workingSize
  }
}

/// A saved network: its named tensors and its description.
///
/// On disk a checkpoint is one safetensors file holding the model's tensors under their parameter
/// names, the optimizer's state under `optimizer.<...>.<name>` (``TrainingOptimizer``), and the JSON description
/// (``CheckpointDescription``) in the `__metadata__` entry `atso.checkpoint`. A readable copy of
/// the description is written beside it as `<file>.json`. Both are written to a temporary file in
/// the same folder and renamed over the target, so a crash never leaves a half-written checkpoint.
public struct Checkpoint: Sendable {
  /// The metadata key holding the description.
  public static let descriptionKey = "atso.checkpoint"
  /// The name prefix of optimizer state tensors.
  public static let optimizerPrefix = TrainingOptimizer.statePrefix

  /// The description.
  public var description: CheckpointDescription
  /// The model's tensors (parameters and buffers), by name.
  public var tensors: [String: Tensor]
  /// The tensor names in the model's order.
  public var names: [String]

  /// Captures a model, with its optimizer's velocities when `training` is given.
  public init<M: SegmentationModel>(
    model: M, classSetName: String, training: TrainingState? = nil, workingSize: ImageSize? = nil
  ) {
    let named = model.namedTensors
    names = named.map(\.name)
    tensors = Dictionary(uniqueKeysWithValues: named.map { ($0.name, $0.tensor) })
    var state = training
    if var s = state {
      for (name, tensor) in s.optimizer.stateTensors { tensors[name] = tensor }
      s.optimizer = s.optimizer.withoutStateTensors
      state = s
    }
    description = CheckpointDescription(
      architecture: model.architecture, classSetName: classSetName, training: state,
      workingSize: workingSize)
  }

  /// Writes the checkpoint to `path` (and its description to `path + ".json"`), atomically.
  ///
  /// - Throws: ``ModelError/fileAccess(path:reason:)``.
  public func write(to path: String) throws(ModelError) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    let json: Data
    do { json = try encoder.encode(description) } catch {
      throw .fileAccess(path: path, reason: "cannot encode the description: \(error)")
    }
    let descriptionText = String(decoding: json, as: UTF8.self)
    var ordered = names.compactMap { name in tensors[name].map { (name: name, tensor: $0) } }
    for name in tensors.keys.sorted() where !names.contains(name) {
      if let t = tensors[name] { ordered.append((name, t)) }
    }
    let data = SafeTensors.encode(ordered, metadata: [Self.descriptionKey: descriptionText])
    try writeAtomically(data, to: path)
    encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
    if let pretty = try? encoder.encode(description) {
      try writeAtomically(pretty, to: path + ".json")
    }
  }

  /// Reads a checkpoint written by ``write(to:)`` (or any safetensors file with the description).
  ///
  /// - Throws: ``ModelError/fileAccess(path:reason:)`` or
  ///   ``ModelError/malformedCheckpoint(path:reason:)``.
  public static func read(from path: String) throws(ModelError) -> Checkpoint {
    switch FileRead.bytes(at: path, limit: maxFileBytes) {
    case .success(let bytes): return try decode(Data(bytes), path: path)
    case .failure(let failure): throw .fileAccess(path: path, reason: "cannot read: \(failure)")
    }
  }

  /// Decodes the bytes of a checkpoint file (as ``read(from:)`` does after reading it); `path`
  /// names the file in errors.
  ///
  /// - Throws: ``ModelError/malformedCheckpoint(path:reason:)``,
  ///   ``ModelError/invalidSetting(field:value:expected:)`` for an architecture that cannot be
  ///   built, ``ModelError/checkpointMismatch(path:reason:)``.
  public static func decode(_ data: Data, path: String) throws(ModelError) -> Checkpoint {
    let (tensors, metadata) = try SafeTensors.decode(data, path: path)
    guard let text = metadata[descriptionKey] else {
      throw .malformedCheckpoint(path: path, reason: "no '\(descriptionKey)' entry in __metadata__")
    }
    let description: CheckpointDescription
    do {
      description = try JSONDecoder().decode(CheckpointDescription.self, from: Data(text.utf8))
    } catch let error as DecodingError {
      throw .malformedCheckpoint(
        path: path, reason: "bad '\(descriptionKey)' description: \(decodingReason(error))")
    } catch {
      throw .malformedCheckpoint(path: path, reason: "bad '\(descriptionKey)' description")
    }
    guard description.formatVersion == 1 else {
      throw .malformedCheckpoint(
        path: path, reason: "format version \(description.formatVersion); this reader knows 1")
    }
    // The architecture is checked before anything is built from it: a network the file cannot
    // fill is refused without allocating it.
    try description.architecture.validate { "\(path): architecture.\($0)" }
    let stored = tensors.reduce(0) { $0 + $1.tensor.count }
    if let needed = description.architecture.parameterScalarCount, needed > stored {
      throw .checkpointMismatch(
        path: path,
        reason: "\(description.architecture.summary) has \(needed) parameters but the file "
          + "holds \(stored) values")
    }
    return Checkpoint(description: description, tensors: tensors, path: path)
  }

  /// The largest checkpoint file read (4 GiB).
  public static let maxFileBytes = 1 << 32

  private init(
    description: CheckpointDescription, tensors: [(name: String, tensor: Tensor)], path: String
  ) {
    self.description = description
    self.names = tensors.map(\.name).filter { !$0.hasPrefix(Self.optimizerPrefix) }
    self.tensors = Dictionary(tensors.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
  }

  /// The training state with the optimizer's velocities restored.
  public var trainingState: TrainingState? {
    guard var state = description.training else { return nil }
    state.optimizer.restoreState(from: tensors)
    return state
  }

  /// Loads the saved tensors into `model`, which must have the same architecture.
  ///
  /// - Throws: ``ModelError/checkpointMismatch(path:reason:)`` when the architecture differs or a
  ///   tensor is missing or has another shape; `path` names the checkpoint in the error.
  public func restore<M: SegmentationModel>(into model: inout M, path: String = "checkpoint")
    throws(ModelError)
  {
    guard model.architecture == description.architecture else {
      throw .checkpointMismatch(
        path: path,
        reason: "architecture \(description.architecture), model is \(model.architecture)")
    }
    for entry in model.namedTensors {
      guard let saved = tensors[entry.name] else {
        throw .checkpointMismatch(path: path, reason: "missing tensor '\(entry.name)'")
      }
      guard saved.shape == entry.tensor.shape else {
        throw .checkpointMismatch(
          path: path,
          reason: "tensor '\(entry.name)' has shape \(saved.shape), expected \(entry.tensor.shape)")
      }
    }
    model.parameters = tensors
  }

  /// Builds the saved network and loads its tensors.
  public func makeModel(path: String = "checkpoint") throws(ModelError) -> any SegmentationModel {
    var generator = SeededGenerator(seed: 0)
    var model = description.architecture.makeModel(using: &generator)
    try restore(into: &model, path: path)
    return model
  }
}

/// Writes `data` to a temporary file beside `path`, then renames it over `path`.
func writeAtomically(_ data: Data, to path: String) throws(ModelError) {
  if let reason = FileWrite.atomically(data, to: path) {
    throw .fileAccess(path: path, reason: reason)
  }
}

/// A short reason for a JSON decoding error: what is wrong and where (`architecture.unet`),
/// without Swift's type names.
public func decodingReason(_ error: DecodingError) -> String {
  func path(_ keys: [any CodingKey]) -> String {
    keys.isEmpty
      ? "the top level"
      : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
  }
  switch error {
  case .keyNotFound(let key, let context):
    let parent = context.codingPath.isEmpty ? "" : " in \(path(context.codingPath))"
    return "missing key '\(key.stringValue)'\(parent)"
  case .typeMismatch(let type, let context):
    return "\(path(context.codingPath)) is not \(typeName(type))"
  case .valueNotFound(let type, let context):
    return "\(path(context.codingPath)) is null, expected \(typeName(type))"
  case .dataCorrupted(let context):
    let reason = context.underlyingError.map { "\($0)" } ?? context.debugDescription
    return context.codingPath.isEmpty ? reason : "\(path(context.codingPath)): \(reason)"
  @unknown default:
    return "\(error)"
  }
}

private func typeName(_ type: Any.Type) -> String {
  switch type {
  case is String.Type: "a string"
  case is Int.Type, is UInt64.Type, is Int64.Type, is UInt8.Type: "an integer"
  case is Double.Type, is Float.Type: "a number"
  case is Bool.Type: "true or false"
  default: "\(type)".hasPrefix("Array") ? "an array" : "an object"
  }
}
