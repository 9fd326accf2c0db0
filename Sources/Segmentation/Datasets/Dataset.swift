import Foundation
import Taxonomy

/// One image of a dataset and, when the split is labelled, its label map.
public struct SampleReference: Sendable, Equatable, Hashable, Codable {
  /// A stable identifier, unique within the dataset (e.g. `frankfurt_000000_000294`).
  public var id: String
  /// The picture (PNG or JPEG).
  public var imagePath: String
  /// The label map (gray or palette PNG), `nil` for unlabelled samples.
  public var labelPath: String?

  public init(id: String, imagePath: String, labelPath: String? = nil) {
    self.id = id
    self.imagePath = imagePath
    self.labelPath = labelPath
  }
}

/// A decoded sample: the picture and its label map, already passed through the label table.
public struct Sample: Sendable, Equatable {
  public var id: String
  public var image: RGBImage
  /// The label map in model class ids (`nil` for unlabelled samples).
  public var label: LabelImage?

  public init(id: String, image: RGBImage, label: LabelImage?) {
    self.id = id
    self.image = image
    self.label = label
  }
}

/// A list of samples and the name of the class set their label pixels are written in.
///
/// The class set name (`"cityscapes-34"`, `"mapillary-vistas-v1.2"`, `"camvid-11"`, ...) tells the
/// caller which label mapping to build; the mapping itself arrives as a plain 256-entry table
/// (source pixel value -> model class id or ignore), so this module does not depend on how
/// taxonomies are described.
public struct Dataset: Sendable, Equatable {
  /// The class set the label files use.
  public var classSetName: String
  /// The samples, in a stable (sorted or listed) order.
  public var samples: [SampleReference]
  /// The class set of the label files, once the caller has resolved ``classSetName``: every
  /// label file read is then checked against it (``load(_:labelTable:maxPixels:)``).
  public var labelClasses: ClassSet?

  public init(classSetName: String, samples: [SampleReference], labelClasses: ClassSet? = nil) {
    self.classSetName = classSetName
    self.samples = samples
    self.labelClasses = labelClasses
  }

  /// The number of samples.
  public var count: Int { samples.count }

  /// Whether every sample has a label file.
  public var isLabeled: Bool { samples.allSatisfy { $0.labelPath != nil } }

  /// The samples for which `isIncluded` is true, e.g. one CamVid sequence:
  /// `camvid.filtered { $0.id.hasPrefix("0001TP") }`.
  public func filtered(_ isIncluded: (SampleReference) -> Bool) -> Dataset {
    Dataset(
      classSetName: classSetName, samples: samples.filter(isIncluded), labelClasses: labelClasses)
  }

  /// The same images with their labels dropped: a labelled split used as an unlabelled domain.
  public func withoutLabels() -> Dataset {
    Dataset(
      classSetName: classSetName,
      samples: samples.map { SampleReference(id: $0.id, imagePath: $0.imagePath) },
      labelClasses: labelClasses)
  }

  /// Decodes sample `index`, mapping its label pixels through `labelTable` once.
  ///
  /// With ``labelClasses`` set, the raw label values are checked first.
  /// - Parameters:
  ///   - labelTable: 256 entries, `labelTable[pixel]` is the class id or the ignore index;
  ///     `nil` keeps the raw pixel values.
  ///   - maxPixels: the decoder's pixel limit.
  /// - Throws: `DatasetError.image` for unreadable files, `.sizeMismatch` when image and label
  ///   differ in size, `.invalidLabelTable` for a table that does not have 256 entries,
  ///   `.labelValues` for label values that are no class of ``labelClasses`` (nor its ignore
  ///   value), naming the file, the values and their pixel counts.
  public func load(
    _ index: Int, labelTable: [UInt8]? = nil, maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(DatasetError) -> Sample {
    try Dataset.load(
      samples[index], labelTable: labelTable, labelClasses: labelClasses, maxPixels: maxPixels)
  }

  /// Decodes one sample (see ``load(_:labelTable:maxPixels:)``); `labelClasses`, when given,
  /// checks the raw label values.
  public static func load(
    _ reference: SampleReference, labelTable: [UInt8]? = nil, labelClasses: ClassSet? = nil,
    maxPixels: Int = ImageLimits.defaultMaxPixels
  ) throws(DatasetError) -> Sample {
    if let table = labelTable, table.count != 256 {
      throw .invalidLabelTable(count: table.count)
    }
    let image: RGBImage
    do {
      image = try ImageFile.readRGB(at: reference.imagePath, maxPixels: maxPixels)
    } catch {
      throw .image(error)
    }
    guard let labelPath = reference.labelPath else {
      return Sample(id: reference.id, image: image, label: nil)
    }
    var label: LabelImage
    do {
      label = try ImageFile.readLabel(at: labelPath, maxPixels: maxPixels)
    } catch {
      throw .image(error)
    }
    guard label.width == image.width, label.height == image.height else {
      throw .sizeMismatch(
        imagePath: reference.imagePath, imageWidth: image.width, imageHeight: image.height,
        labelPath: labelPath, labelWidth: label.width, labelHeight: label.height)
    }
    if let labelClasses {
      do {
        try labelClasses.checkLabelValues(
          ClassSet.valueHistogram(label.values), file: labelPath)
      } catch {
        throw .labelValues(error)
      }
    }
    if let table = labelTable { label = label.mapped(through: table) }
    return Sample(id: reference.id, image: image, label: label)
  }
}

/// The error of the dataset readers and the data loader. Every case names the file involved.
public enum DatasetError: Error, Equatable, CustomStringConvertible {
  /// A file or folder the layout requires does not exist.
  case missingFile(path: String, context: String)
  /// The folder or list holds no sample.
  case empty(path: String)
  /// A list file line cannot be parsed.
  case malformedList(file: String, line: Int, reason: String)
  /// A picture and its label map differ in size.
  case sizeMismatch(
    imagePath: String, imageWidth: Int, imageHeight: Int, labelPath: String, labelWidth: Int,
    labelHeight: Int)
  /// Two samples have the same id.
  case duplicateID(String, path: String)
  /// A label lookup table without 256 entries.
  case invalidLabelTable(count: Int)
  /// Decoding a file failed.
  case image(ImageError)
  /// Samples of one batch came out with different sizes (set a crop or working size).
  case inconsistentBatch(id: String, shape: [Int], expected: [Int])
  /// A saved loader state does not fit this loader.
  case stateMismatch(reason: String)
  /// A dataset spec string (``DatasetSpec``) cannot be parsed.
  case invalidSpec(String, reason: String)
  /// A label file holds values that its class set lacks
  /// (``TaxonomyError/labelValuesNotInClassSet(file:classSet:values:)``).
  case labelValues(TaxonomyError)

  public var description: String {
    switch self {
    case .missingFile(let path, let context): "\(path): missing (\(context))"
    case .empty(let path): "\(path): no samples found"
    case .malformedList(let file, let line, let reason): "\(file):\(line): \(reason)"
    case .sizeMismatch(let ip, let iw, let ih, let lp, let lw, let lh):
      "\(lp): label is \(lw)x\(lh) but image \(ip) is \(iw)x\(ih)"
    case .duplicateID(let id, let path): "\(path): duplicate sample id '\(id)'"
    case .invalidLabelTable(let count): "a label table needs 256 entries, got \(count)"
    case .image(let error): error.description
    case .inconsistentBatch(let id, let shape, let expected):
      "sample \(id): preprocessed shape \(shape) differs from the batch shape \(expected)"
    case .stateMismatch(let reason): "cannot resume the data loader: \(reason)"
    case .invalidSpec(let text, let reason): "dataset '\(text)': \(reason)"
    case .labelValues(let error): error.description
    }
  }
}

// MARK: - File helpers

enum DatasetFiles {
  static func isDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
      && isDirectory.boolValue
  }

  static func isFile(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
      && !isDirectory.boolValue
  }

  /// The sorted names of the entries of a folder.
  static func contents(of path: String, context: String) throws(DatasetError) -> [String] {
    guard isDirectory(path) else { throw .missingFile(path: path, context: context) }
    do {
      return try FileManager.default.contentsOfDirectory(atPath: path).sorted()
    } catch {
      throw .image(.readFailed(path: path, reason: "\(error)"))
    }
  }

  static func join(_ base: String, _ parts: String...) -> String {
    var result = base
    for part in parts where !part.isEmpty {
      result = result.hasSuffix("/") ? result + part : result + "/" + part
    }
    return result
  }

  static func stem(_ name: String) -> String {
    let file = (name as NSString).lastPathComponent
    return (file as NSString).deletingPathExtension
  }

  static func checkUniqueIDs(_ samples: [SampleReference], path: String) throws(DatasetError) {
    var seen = Set<String>()
    for s in samples where !seen.insert(s.id).inserted {
      throw .duplicateID(s.id, path: path)
    }
  }
}
