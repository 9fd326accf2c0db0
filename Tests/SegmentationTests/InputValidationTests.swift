import Foundation
import Taxonomy
import Tensor
import Testing

@testable import Segmentation

/// The safetensors bytes of a JSON header (padded to 8 bytes) and data.
private func safetensors(_ header: String, data: [UInt8] = []) -> Data {
  var json = Array(header.utf8)
  while json.count % 8 != 0 { json.append(0x20) }
  var bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }
  bytes += json + data
  return Data(bytes)
}

/// The description metadata of a checkpoint with this architecture JSON.
private func metadata(_ architecture: String) -> String {
  let description =
    #"{"formatVersion":1,"classSetName":"cityscapes-19","architecture":\#(architecture)}"#
  let escaped = description.replacingOccurrences(of: "\"", with: "\\\"")
  return #""__metadata__":{"atso.checkpoint":"\#(escaped)"}"#
}

private func malformed(_ data: Data) -> String? {
  do {
    _ = try SafeTensors.decode(data, path: "x.safetensors")
    return nil
  } catch {
    guard case .malformedCheckpoint(let path, let reason) = error, path == "x.safetensors" else {
      return "unexpected error \(error)"
    }
    return reason
  }
}

@Suite("input validation: sizes, shapes, truncation, settings")
struct InputValidationTests {
  // MARK: Sizes against the networks

  @Test(
    "the working size must cover the network's down-sampling",
    arguments: [
      (ModelArchitecture.unet(configuration: .init(widths: [4, 8], classCount: 3)), 2),
      (.unet(configuration: .init(widths: [4, 8, 16, 32], classCount: 3)), 8),
      (.deepLab(configuration: .init(widths: [4, 4, 8, 8], asppChannels: 4, classCount: 3)), 8),
    ])
  func minimumSize(architecture: ModelArchitecture, minimum: Int) throws {
    #expect(architecture.minimumInputSide == minimum)
    try architecture.check(workingSize: ImageSize(height: minimum, width: minimum), field: "--size")
    #expect(throws: ModelError.self) {
      try architecture.check(workingSize: ImageSize(height: minimum - 1, width: 64), field: "--size")
    }
    do {
      try architecture.check(workingSize: ImageSize(height: 1, width: 1), field: "--size")
      Issue.record("1x1 accepted")
    } catch {
      #expect(error.description.hasPrefix("--size 1x1 is not accepted: expected at least"))
    }
    // A network built from the architecture really runs at the minimum size.
    var generator = SeededGenerator(seed: 1)
    let model = architecture.makeModel(using: &generator)
    let (labels, _) = predictSegmentation(
      model, images: Tensor(repeating: 0.5, shape: [1, minimum, minimum, 3]))
    #expect(labels.count == minimum * minimum)
  }

  @Test("evaluation at each image's own size names an image smaller than the network accepts")
  func ownSizeTooSmall() throws {
    let folder = try TestPaths.temporaryDirectory("own-size")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    try ImageFile.writePNG(RGBImage(width: 1, height: 1, pixels: [1, 2, 3]), to: folder + "/a.png")
    try ImageFile.writePNG(LabelImage(width: 1, height: 1, values: [0]), to: folder + "/a_l.png")
    let classes = try ClassSet(
      contentsOfFile: TestPaths.packageRoot + "/mappings/cityscapes-19.classes.json")
    var generator = SeededGenerator(seed: 1)
    let model = UNet(.init(widths: [2, 4], classCount: classes.outputCount), using: &generator)
    let source = LabeledSource(
      dataset: Dataset(
        classSetName: classes.name,
        samples: [SampleReference(id: "a", imagePath: folder + "/a.png", labelPath: folder + "/a_l.png")]),
      labelTable: Array(0...255))
    do {
      _ = try evaluateSegmentation(model, on: source, classes: classes, workingSize: nil)
      Issue.record("a 1x1 image went through a U-Net that halves it")
    } catch {
      #expect("\(error)".contains("sample 'a': the image size 1x1 is not accepted"), "\(error)")
    }
  }

  @Test("absurd working sizes are refused before any allocation")
  func absurdSizes() {
    let unet = ModelArchitecture.unet(configuration: .init(widths: [4, 8], classCount: 3))
    for size in [
      ImageSize(height: 100_000, width: 100_000), ImageSize(height: 70_000, width: 2),
      ImageSize(height: 20_000, width: 20_000),
    ] {
      #expect(throws: ModelError.self) { try unet.check(workingSize: size, field: "--size") }
    }
  }

  @Test("the parameter count from the configuration equals the built network's")
  func parameterCount() {
    let architectures: [ModelArchitecture] = [
      .unet(configuration: .init(widths: [4, 8], classCount: 3)),
      .unet(configuration: .init(inputChannels: 5, widths: [3, 5, 7], classCount: 11)),
      .unet(configuration: .init()),
      .deepLab(configuration: .init(widths: [4, 4, 8, 8], asppChannels: 4, classCount: 19)),
      .deepLab(
        configuration: .init(
          inputChannels: 1, widths: [2, 3, 4, 5], asppChannels: 6, asppRates: [1], classCount: 2)),
    ]
    for architecture in architectures {
      var generator = SeededGenerator(seed: 0)
      let model = architecture.makeModel(using: &generator)
      let actual = model.namedTensors.reduce(0) { $0 + $1.tensor.count }
      #expect(architecture.parameterScalarCount == actual, "\(architecture.summary)")
    }
    // 488,307 trainable parameters for the reference U-Net (REFERENCE_NET.md) plus the buffers.
    #expect(ModelArchitecture.unet(configuration: .init()).parameterScalarCount ?? 0 > 488_307)
  }

  @Test("a batch whose activations cannot fit is refused with the estimate and the limit")
  func memory() throws {
    let unet = ModelArchitecture.unet(configuration: .init(widths: [16, 32, 64, 128], classCount: 19))
    let size = ImageSize(height: 96, width: 128)
    let small = try #require(unet.estimatedMemoryBytes(batch: 8, size: size, training: true))
    #expect(small > 50 << 20 && small < 2 << 30, "\(small) bytes for batch 8 at 96x128")
    try unet.checkMemory(batch: 8, size: size, training: true, field: "--batch", limit: 4 << 30)
    do {
      try unet.checkMemory(
        batch: 65_536, size: size, training: true, field: "--batch x --size", limit: 4 << 30)
      Issue.record("a batch of 65536 fits in 4 GiB")
    } catch {
      #expect(error.description.contains("--batch x --size 65536 x 96x128 is not accepted"))
      #expect(error.description.contains("4.0 GiB are available"))
    }
    #expect(SettingChecks.availableMemory > 1 << 28)
  }

  @Test("architectures are checked before the network is built")
  func architectures() {
    let bad: [ModelArchitecture] = [
      .unet(configuration: .init(widths: [], classCount: 3)),
      .unet(configuration: .init(widths: [8], classCount: 3)),
      .unet(configuration: .init(widths: [0, 8], classCount: 3)),
      .unet(configuration: .init(widths: [1 << 30, 1 << 30], classCount: 3)),
      .unet(configuration: .init(widths: [4, 8], classCount: 0)),
      .unet(configuration: .init(widths: [4, 8], classCount: 300)),
      .unet(configuration: .init(inputChannels: 0, widths: [4, 8], classCount: 3)),
      .unet(configuration: .init(widths: [16_384, 16_384, 16_384], classCount: 3)),
      .deepLab(configuration: .init(widths: [4, 4, 8], classCount: 3)),
      .deepLab(configuration: .init(widths: [4, 4, 8, 8], asppChannels: 0, classCount: 3)),
      .deepLab(configuration: .init(widths: [4, 4, 8, 8], asppRates: [0], classCount: 3)),
    ]
    for architecture in bad {
      #expect(throws: ModelError.self, "\(architecture)") {
        try architecture.validate { "x: architecture.\($0)" }
      }
    }
    #expect(throws: Never.self) {
      try ModelArchitecture.unet(configuration: .init()).validate { $0 }
    }
  }

  // MARK: Settings

  @Test("settings: NaN, infinities, negative and absurd values name the field and the range")
  func settings() {
    func message(_ body: () throws -> Void) -> String {
      do {
        try body()
        return ""
      } catch { return "\(error)" }
    }
    #expect(
      message { try SettingChecks.positive(Float.nan, field: "--learning-rate") }
        == "--learning-rate nan is not accepted: expected a finite number > 0")
    #expect(message { try SettingChecks.positive(-1.0, field: "lr") }.hasPrefix("lr -1 is not"))
    #expect(message { try SettingChecks.positive(Double.infinity, field: "lr") }.contains("inf"))
    #expect(message { try SettingChecks.positive(0.01, field: "lr") }.isEmpty)
    #expect(message { try SettingChecks.finite(Float(1), in: 0..<1, field: "m") }.contains("0..<1"))
    #expect(message { try SettingChecks.finite(Float(0.9), in: 0..<1, field: "m") }.isEmpty)
    #expect(message { try SettingChecks.batch(0, field: "--batch") }.contains("1...65536"))
    #expect(message { try SettingChecks.batch(1 << 40, field: "--batch") }.contains("1...65536"))
    #expect(message { try SettingChecks.steps(Int.max, field: "--iterations") }.contains("--iterations"))
    #expect(message { try SettingChecks.threads(100_000, field: "--threads") }.contains("1...1024"))
  }

  // MARK: safetensors headers and checkpoint descriptions

  @Test("safetensors: overflowing, negative and inconsistent shapes and offsets are errors")
  func safetensorsHeaders() {
    let cases: [(Data, String)] = [
      (Data(), "has no header length"),
      (Data([1, 2, 3]), "has no header length"),
      (Data(withUnsafeBytes(of: UInt64(1 << 62).littleEndian) { Array($0) } + [0x7B, 0x7D]),
       "exceeds the file"),
      (safetensors(#"{"w":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,0]}}"#),
       "does not fit"),
      (safetensors(#"{"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}}"#),
       "does not fit"),
      (safetensors(#"{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
       "does not fit"),
      (safetensors(
        #"{"w":{"dtype":"F32","shape":[1],"data_offsets":[9223372036854775800,9223372036854775804]}}"#,
        data: [0, 0, 0, 0]), "data_offsets"),
      (safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: [0, 0, 0, 0]),
       "data_offsets"),
      (safetensors(#"{"w":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}"#,
        data: [UInt8](repeating: 0, count: 40)), "does not fit"),
      (safetensors(
        #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        data: [0, 0, 0, 0]), "back to back"),
      (safetensors(#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        data: [UInt8](repeating: 0, count: 12)), "the data is 12 bytes"),
      (safetensors(#"{"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]),
       "only F32"),
      (safetensors("[1, 2]"), "not a JSON object"),
      (safetensors("{not json"), "is not JSON"),
    ]
    for (data, expected) in cases {
      let reason = malformed(data)
      #expect(reason?.contains(expected) ?? false, "\(reason ?? "accepted") vs \(expected)")
    }
    // A well-formed file still decodes.
    let good = safetensors(
      #"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 128, 63, 0, 0, 0, 64])
    #expect(malformed(good) == nil)
  }

  @Test("checkpoints: a description whose network cannot be built is refused before building it")
  func checkpointDescriptions() throws {
    let folder = try TestPaths.temporaryDirectory("ckpt-desc")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let cases: [(String, String)] = [
      (#"{"unet":{"configuration":{"inputChannels":3,"widths":[],"classCount":19}}}"#,
       "architecture.widths [] is not accepted"),
      (#"{"unet":{"configuration":{"inputChannels":3,"widths":[1073741824,1073741824],"classCount":19}}}"#,
       "architecture.widths"),
      (#"{"unet":{"configuration":{"inputChannels":3,"widths":[4,8],"classCount":0}}}"#,
       "architecture.classCount 0"),
      (#"{"unet":{"configuration":{"inputChannels":3,"widths":[4,8],"classCount":19}}}"#,
       "parameters but the file holds 0 values"),
      (#"{"deepLab":{"configuration":{"inputChannels":3,"widths":[4],"asppChannels":4,"asppRates":[],"classCount":19}}}"#,
       "architecture.widths [4]"),
      (#"{"transformer":{}}"#, "bad 'atso.checkpoint' description"),
    ]
    for (index, (architecture, expected)) in cases.enumerated() {
      let path = folder + "/\(index).safetensors"
      try safetensors("{\(metadata(architecture))}").write(to: URL(fileURLWithPath: path))
      do {
        _ = try Checkpoint.read(from: path)
        Issue.record("\(architecture) accepted")
      } catch {
        #expect(error.description.hasPrefix(path + ": "), "\(error)")
        #expect(error.description.contains(expected), "\(error)")
      }
    }
    #expect(throws: ModelError.fileAccess(path: folder + "/none", reason: "cannot read: no such file")) {
      _ = try Checkpoint.read(from: folder + "/none")
    }
    #expect(
      throws: ModelError.fileAccess(path: folder, reason: "cannot read: is a folder, not a file")
    ) { _ = try Checkpoint.read(from: folder) }
  }

  @Test("a truncated checkpoint is an error at every cut, never a crash")
  func truncatedCheckpoint() throws {
    let folder = try TestPaths.temporaryDirectory("ckpt-cut")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    var generator = SeededGenerator(seed: 3)
    let model = UNet(.init(widths: [2, 4], classCount: 3), using: &generator)
    let path = folder + "/m.safetensors"
    try Checkpoint(model: model, classSetName: "x").write(to: path)
    let bytes = try ImageFile.readBytes(at: path)
    for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 97)) {
      #expect(throws: ModelError.self, "cut at \(cut) of \(bytes.count)") {
        _ = try SafeTensors.decode(Data(bytes[..<cut]), path: path)
      }
    }
  }

  // MARK: Truncated and corrupt images

  @Test("a truncated or corrupt JPEG is an error, not an image made up by libjpeg")
  func truncatedJPEG() throws {
    let bytes = try TestPaths.fixtureBytes("rgb8.jpg")
    _ = try JPEGCodec.decodeRGB(bytes, path: "ok.jpg")
    // Every cut inside the file fails; none yields an image.
    var messages = Set<String>()
    for cut in 3..<(bytes.count - 2) {
      do {
        _ = try JPEGCodec.decodeRGB(Array(bytes[..<cut]), path: "cut.jpg")
        Issue.record("a JPEG cut at \(cut) of \(bytes.count) bytes decoded")
      } catch {
        guard case .decodeFailed(let path, "JPEG", let reason) = error else {
          Issue.record("\(error)")
          continue
        }
        #expect(path == "cut.jpg")
        messages.insert(reason)
      }
    }
    #expect(messages.contains("Premature end of JPEG file (the file is truncated)"))
    // Only the end-of-image marker missing: every pixel is there, the image is the same.
    let full = try JPEGCodec.decodeRGB(bytes, path: "ok.jpg")
    #expect(bytes.suffix(2) == [0xFF, 0xD9])
    #expect(try JPEGCodec.decodeRGB(Array(bytes.dropLast(2)), path: "no-eoi.jpg") == full)
  }

  @Test("a truncated PNG is an error at every cut")
  func truncatedPNG() throws {
    let bytes = try TestPaths.fixtureBytes("rgb8.png")
    for cut in 0..<(bytes.count - 12) {  // the IEND chunk is 12 bytes
      #expect(throws: ImageError.self, "cut at \(cut)") {
        _ = try PNGCodec.decodeRGB(Array(bytes[..<cut]), path: "cut.png")
      }
    }
  }

  // MARK: Files

  @Test("files: the system's reasons, folders and sizes refused before reading")
  func fileReading() throws {
    let folder = try TestPaths.temporaryDirectory("files")
    defer { try? FileManager.default.removeItem(atPath: folder) }
    #expect(FileRead.bytes(at: folder + "/none", limit: 10) == .failure(.notFound))
    #expect(FileRead.bytes(at: folder + "/none/deeper", limit: 10) == .failure(.notFound))
    #expect(FileRead.bytes(at: folder, limit: 10) == .failure(.isDirectory))
    #expect(FileWrite.atomically([1, 2, 3], to: folder + "/a/b/c.bin", createFolders: true) == nil)
    #expect(FileRead.bytes(at: folder + "/a/b/c.bin", limit: 10) == .success([1, 2, 3]))
    #expect(FileRead.bytes(at: folder + "/a/b/c.bin", limit: 2) == .failure(.tooLarge(size: 3, limit: 2)))
    #expect(FileRead.bytes(at: "/proc/self/stat", limit: 1 << 20).map { !$0.isEmpty } == .success(true))
    // No temporary file is left beside the target.
    #expect(try FileManager.default.contentsOfDirectory(atPath: folder + "/a/b") == ["c.bin"])
    // A file where a folder should be.
    #expect(FileWrite.atomically([1], to: folder + "/a/b/c.bin/d", createFolders: true) != nil)
    #expect(throws: ImageError.fileNotFound(path: folder + "/x.png")) {
      _ = try ImageFile.readRGB(at: folder + "/x.png")
    }
  }
}
