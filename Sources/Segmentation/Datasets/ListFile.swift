import Foundation

extension Dataset {
  /// Reads a list file of `image [label]` lines; paths are relative to the list file's folder.
  ///
  /// Fields are separated by tabs when the file has a tab anywhere (paths may then contain
  /// spaces), otherwise by spaces. Blank lines and lines starting with `#` are skipped. A line
  /// with one field is an unlabelled sample. The id is the image path as written, without its
  /// extension.
  /// - Parameters:
  ///   - file: the list file.
  ///   - classSetName: the class set the label files use.
  /// - Throws: `DatasetError.missingFile` (names the entry and the line), `.malformedList`,
  ///   `.empty`, `.duplicateID`.
  public static func list(file: String, classSetName: String) throws(DatasetError) -> Dataset {
    try readList(file: file, classSetName: classSetName) { entry, folder in
      let path = entry.hasPrefix("/") ? entry : DatasetFiles.join(folder, entry)
      return DatasetFiles.isFile(path) ? path : nil
    }
  }

  /// Reads a SegNet-style CamVid list (`train.txt`, `val.txt`, `test.txt`; class set
  /// `camvid-11`).
  ///
  /// The SegNet tutorial's lists hold absolute paths such as
  /// `/SegNet/CamVid/train/0001TP_006690.png /SegNet/CamVid/trainannot/0001TP_006690.png`. Each
  /// entry is resolved against the list file's folder: as written when it exists there (relative
  /// lists), else by its last folder and file name (`train/0001TP_006690.png`), else by its
  /// file name alone.
  /// - Throws: `DatasetError.missingFile` naming the entry and the line, `.malformedList`,
  ///   `.empty`.
  public static func camVid(listFile: String) throws(DatasetError) -> Dataset {
    try readList(file: listFile, classSetName: "camvid-11") { entry, folder in
      var candidates: [String] = []
      if entry.hasPrefix("/") {
        candidates.append(entry)
      } else {
        candidates.append(DatasetFiles.join(folder, entry))
      }
      let parts = entry.split(separator: "/").map(String.init)
      if parts.count >= 2 {
        candidates.append(DatasetFiles.join(folder, parts[parts.count - 2], parts[parts.count - 1]))
      }
      if let last = parts.last { candidates.append(DatasetFiles.join(folder, last)) }
      return candidates.first(where: DatasetFiles.isFile)
    }
  }

  private static func readList(
    file: String, classSetName: String, resolve: (String, String) -> String?
  ) throws(DatasetError) -> Dataset {
    let bytes: [UInt8]
    do {
      bytes = try ImageFile.readBytes(at: file)
    } catch {
      if case .fileNotFound = error { throw .missingFile(path: file, context: "list file") }
      throw .image(error)
    }
    let folder = (file as NSString).deletingLastPathComponent
    let text = String(decoding: bytes, as: UTF8.self)
    let tabSeparated = text.contains("\t")
    var samples: [SampleReference] = []
    for (offset, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false)
      .enumerated()
    {
      let lineNumber = offset + 1
      let line = rawLine.trimmingCharacters(in: .whitespacesAndNewlines)
      if line.isEmpty || line.hasPrefix("#") { continue }
      let fields =
        tabSeparated
        ? line.split(separator: "\t").map { $0.trimmingCharacters(in: .whitespaces) }
          .filter { !$0.isEmpty }
        : line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
      guard fields.count == 1 || fields.count == 2 else {
        throw .malformedList(
          file: file, line: lineNumber,
          reason: "expected 'image [label]', found \(fields.count) fields")
      }
      guard let imagePath = resolve(fields[0], folder) else {
        throw .missingFile(path: fields[0], context: "image at \(file):\(lineNumber)")
      }
      var labelPath: String? = nil
      if fields.count == 2 {
        guard let path = resolve(fields[1], folder) else {
          throw .missingFile(path: fields[1], context: "label at \(file):\(lineNumber)")
        }
        labelPath = path
      }
      let id = (fields[0] as NSString).deletingPathExtension
      samples.append(SampleReference(id: id, imagePath: imagePath, labelPath: labelPath))
    }
    guard !samples.isEmpty else { throw .empty(path: file) }
    // CamVid ids: the file stem, unique across sequences (lists may hold absolute paths).
    if classSetName == "camvid-11" {
      samples = samples.map {
        SampleReference(
          id: DatasetFiles.stem($0.imagePath), imagePath: $0.imagePath, labelPath: $0.labelPath)
      }
    }
    try DatasetFiles.checkUniqueIDs(samples, path: file)
    return Dataset(classSetName: classSetName, samples: samples)
  }
}
