extension Dataset {
  /// Which Cityscapes label file a sample uses.
  public enum CityscapesLabels: String, Sendable, CaseIterable {
    /// `*_gtFine_labelIds.png`: the 34 label ids (class set `cityscapes-34`).
    case labelIds
    /// `*_gtFine_labelTrainIds.png`: the 19 train ids, 255 ignore (class set `cityscapes-19`).
    case trainIds

    var suffix: String { self == .labelIds ? "_gtFine_labelIds.png" : "_gtFine_labelTrainIds.png" }
    var classSetName: String { self == .labelIds ? "cityscapes-34" : "cityscapes-19" }
  }

  /// Lists a Cityscapes split: `leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png` paired with
  /// `gtFine/<split>/<city>/<stem>_gtFine_labelIds.png` (or `_labelTrainIds`).
  ///
  /// Samples are sorted by city then file name; the id is `<stem>` (e.g.
  /// `frankfurt_000000_000294`).
  /// - Parameters:
  ///   - root: the folder holding `leftImg8bit/` and `gtFine/`.
  ///   - split: `train`, `val`, `test`, ...
  ///   - labels: which label file to pair; `nil` lists the images only (unlabelled use).
  /// - Throws: `DatasetError.missingFile` for a missing image folder or label file, `.empty`.
  public static func cityscapes(
    root: String, split: String, labels: CityscapesLabels? = .labelIds
  ) throws(DatasetError) -> Dataset {
    let imageRoot = DatasetFiles.join(root, "leftImg8bit", split)
    let labelRoot = DatasetFiles.join(root, "gtFine", split)
    var samples: [SampleReference] = []
    for city in try DatasetFiles.contents(of: imageRoot, context: "Cityscapes image folder") {
      let cityFolder = DatasetFiles.join(imageRoot, city)
      guard DatasetFiles.isDirectory(cityFolder) else { continue }
      for name in try DatasetFiles.contents(of: cityFolder, context: "Cityscapes city folder")
      where name.hasSuffix("_leftImg8bit.png") {
        let stem = String(name.dropLast("_leftImg8bit.png".count))
        var labelPath: String? = nil
        if let labels {
          let path = DatasetFiles.join(labelRoot, city, stem + labels.suffix)
          guard DatasetFiles.isFile(path) else {
            throw .missingFile(
              path: path, context: "label of \(DatasetFiles.join(cityFolder, name))")
          }
          labelPath = path
        }
        samples.append(
          SampleReference(
            id: stem, imagePath: DatasetFiles.join(cityFolder, name), labelPath: labelPath))
      }
    }
    guard !samples.isEmpty else { throw .empty(path: imageRoot) }
    try DatasetFiles.checkUniqueIDs(samples, path: imageRoot)
    return Dataset(classSetName: labels?.classSetName ?? "cityscapes-34", samples: samples)
  }
}
