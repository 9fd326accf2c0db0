import Foundation
import Segmentation

/// One image with its label map.
public struct MedicalCase: Sendable, Equatable {
  /// The file name without `.nii`/`.nii.gz` (e.g. `hippocampus_001`).
  public var name: String
  /// Path of the image.
  public var image: String
  /// Path of the label map.
  public var label: String

  public init(name: String, image: String, label: String) {
    self.name = name
    self.image = image
    self.label = label
  }

  /// Reads the image and its labels.
  ///
  /// - Throws: ``MedicalError/shapeMismatch(image:label:imageShape:labelShape:)`` when the two
  ///   differ in shape, and the reading errors of ``NIfTI``.
  public func load() throws(MedicalError) -> (image: Volume<Float>, labels: Volume<UInt8>) {
    let image = try NIfTI.readImage(self.image)
    let labels = try NIfTI.readLabels(label)
    guard image.shape == labels.shape else {
      throw .shapeMismatch(
        image: self.image, label: label, imageShape: image.shape, labelShape: labels.shape)
    }
    return (image, labels)
  }
}

/// A dataset of medical volumes with label maps.
public struct MedicalDataset: Sendable, Equatable {
  /// The dataset name (`dataset.json`'s `name`, or the image folder's name).
  public var name: String
  /// The class names by id (`labels` of `dataset.json`; empty for a plain folder).
  public var classNames: [String]
  /// Modalities by channel (`modality` of `dataset.json`, e.g. `["MRI"]`).
  public var modalities: [String]
  /// The cases, in file order.
  public var cases: [MedicalCase]

  /// `dataset.json` of the Medical Segmentation Decathlon.
  struct Description: Decodable {
    struct Entry: Decodable {
      var image: String
      var label: String
    }
    var name: String?
    var modality: [String: String]?
    var labels: [String: String]?
    var training: [Entry]
  }

  /// Reads a Medical Segmentation Decathlon task folder: `dataset.json` whose `"training"` lists
  /// `{"image", "label"}` paths relative to `root` (in `imagesTr/` and `labelsTr/`).
  ///
  /// - Throws: ``MedicalError/badDatasetDescription(path:reason:)`` for unreadable JSON or
  ///   non-integer label keys, ``MedicalError/missingFile(path:referencedBy:)`` for a listed file
  ///   that does not exist.
  public static func decathlon(root: String) throws(MedicalError) -> MedicalDataset {
    let jsonPath = root + "/dataset.json"
    let description: Description
    let data: [UInt8]
    switch FileRead.bytes(at: jsonPath, limit: 1 << 28) {
    case .success(let bytes): data = bytes
    case .failure(let failure):
      throw .badDatasetDescription(path: jsonPath, reason: "cannot read: \(failure)")
    }
    do {
      description = try JSONDecoder().decode(Description.self, from: Data(data))
    } catch let error as DecodingError {
      throw .badDatasetDescription(path: jsonPath, reason: decodingReason(error))
    } catch {
      throw .badDatasetDescription(path: jsonPath, reason: "not JSON")
    }
    func indexed(_ map: [String: String]?, _ field: String) throws(MedicalError) -> [String] {
      guard let map else { return [] }
      var pairs: [(Int, String)] = []
      for (key, value) in map {
        guard let id = Int(key), id >= 0 else {
          throw .badDatasetDescription(path: jsonPath, reason: "\(field) key '\(key)' is not an id")
        }
        pairs.append((id, value))
      }
      pairs.sort { $0.0 < $1.0 }
      guard pairs.enumerated().allSatisfy({ $0.offset == $0.element.0 }) else {
        throw .badDatasetDescription(path: jsonPath, reason: "\(field) ids are not 0, 1, 2, ...")
      }
      return pairs.map(\.1)
    }
    let classNames = try indexed(description.labels, "labels")
    let modalities = try indexed(description.modality, "modality")
    var cases: [MedicalCase] = []
    for entry in description.training {
      let image = resolve(entry.image, in: root)
      let label = resolve(entry.label, in: root)
      for path in [image, label] where !FileManager.default.fileExists(atPath: path) {
        throw .missingFile(path: path, referencedBy: jsonPath)
      }
      cases.append(MedicalCase(name: volumeName(image), image: image, label: label))
    }
    return MedicalDataset(
      name: description.name ?? URL(fileURLWithPath: root).lastPathComponent,
      classNames: classNames, modalities: modalities, cases: cases)
  }

  /// Pairs the NIfTI files of two folders by file name (`case7.nii.gz` in both).
  ///
  /// Hidden files and files that are not `.nii`/`.nii.gz` are skipped.
  /// - Throws: ``MedicalError/noVolumes(folder:)`` when a folder holds no volume,
  ///   ``MedicalError/unmatchedPair(name:folder:)`` when a volume has no partner in the
  ///   other folder, ``MedicalError/unreadableFile(path:reason:)`` when a folder cannot be listed.
  public static func folderPairs(images: String, labels: String) throws(MedicalError)
    -> MedicalDataset
  {
    let imageFiles = try niftiFiles(in: images)
    let labelFiles = try niftiFiles(in: labels)
    for (folder, files) in [(images, imageFiles), (labels, labelFiles)] where files.isEmpty {
      throw .noVolumes(folder: folder)
    }
    for name in imageFiles.keys where labelFiles[name] == nil {
      throw .unmatchedPair(name: name, folder: labels)
    }
    for name in labelFiles.keys where imageFiles[name] == nil {
      throw .unmatchedPair(name: name, folder: images)
    }
    let cases = imageFiles.keys.sorted().compactMap { name -> MedicalCase? in
      guard let image = imageFiles[name], let label = labelFiles[name] else { return nil }
      return MedicalCase(name: name, image: images + "/" + image, label: labels + "/" + label)
    }
    return MedicalDataset(
      name: URL(fileURLWithPath: images).lastPathComponent, classNames: [], modalities: [],
      cases: cases)
  }

  /// NIfTI files of a folder keyed by volume name (hidden files skipped); empty when there is
  /// none.
  ///
  /// - Throws: ``MedicalError/unreadableFile(path:reason:)`` when the folder cannot be listed.
  public static func niftiFiles(in folder: String) throws(MedicalError) -> [String: String] {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
      throw .unreadableFile(path: folder, reason: "no such folder")
    }
    guard isDirectory.boolValue else {
      throw .unreadableFile(path: folder, reason: "is a file, not a folder")
    }
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: folder)
    } catch {
      throw .unreadableFile(path: folder, reason: "cannot list the folder (permission denied?)")
    }
    var out: [String: String] = [:]
    for file in names
    where !file.hasPrefix(".") && (file.hasSuffix(".nii") || file.hasSuffix(".nii.gz")) {
      out[volumeName(file)] = file
    }
    return out
  }

  /// The file name without its folder and `.nii`/`.nii.gz`.
  static func volumeName(_ path: String) -> String {
    var name = URL(fileURLWithPath: path).lastPathComponent
    for suffix in [".gz", ".nii"] where name.hasSuffix(suffix) { name.removeLast(suffix.count) }
    return name
  }

  static func resolve(_ path: String, in root: String) -> String {
    if path.hasPrefix("/") { return path }
    var relative = path
    while relative.hasPrefix("./") { relative.removeFirst(2) }
    return root + "/" + relative
  }
}
