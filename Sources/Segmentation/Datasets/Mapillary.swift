extension Dataset {
  /// Lists a Mapillary Vistas v1.2 split: `<split>/images/<id>.jpg` with
  /// `<split>/v1.2/labels/<id>.png` (8-bit palette PNGs whose indices are the 66 class ids;
  /// class set `mapillary-vistas-v1.2`).
  ///
  /// Also accepted: the v1.0/v1.1 layout `<split>/labels/`, a flat `<split>/v1.2/` label folder
  /// (the mmsegmentation test layout of `shared/data/mapillary-mini`), and `split == nil` for a
  /// root that directly holds `images/`.
  /// - Parameters:
  ///   - requireLabels: when `true` (default), a missing label folder or file is an error; when
  ///     `false` the samples without labels have `labelPath == nil`.
  /// - Throws: `DatasetError.missingFile` (names the image folder or the missing label), `.empty`.
  public static func mapillaryVistas(
    root: String, split: String? = nil, requireLabels: Bool = true
  ) throws(DatasetError) -> Dataset {
    let base = split.map { DatasetFiles.join(root, $0) } ?? root
    let imageRoot = DatasetFiles.join(base, "images")
    let candidates = [
      DatasetFiles.join(base, "v1.2", "labels"), DatasetFiles.join(base, "v1.2"),
      DatasetFiles.join(base, "labels"),
    ]
    let labelRoot = candidates.first(where: { DatasetFiles.isDirectory($0) })
    if labelRoot == nil && requireLabels {
      throw .missingFile(path: candidates[0], context: "Mapillary Vistas v1.2 label folder")
    }
    var samples: [SampleReference] = []
    for name in try DatasetFiles.contents(of: imageRoot, context: "Mapillary Vistas image folder") {
      let lower = name.lowercased()
      guard lower.hasSuffix(".jpg") || lower.hasSuffix(".jpeg") || lower.hasSuffix(".png") else {
        continue
      }
      let id = DatasetFiles.stem(name)
      var labelPath: String? = nil
      if let labelRoot {
        let path = DatasetFiles.join(labelRoot, id + ".png")
        if DatasetFiles.isFile(path) {
          labelPath = path
        } else if requireLabels {
          throw .missingFile(path: path, context: "label of \(DatasetFiles.join(imageRoot, name))")
        }
      }
      samples.append(
        SampleReference(id: id, imagePath: DatasetFiles.join(imageRoot, name), labelPath: labelPath)
      )
    }
    guard !samples.isEmpty else { throw .empty(path: imageRoot) }
    try DatasetFiles.checkUniqueIDs(samples, path: imageRoot)
    return Dataset(classSetName: "mapillary-vistas-v1.2", samples: samples)
  }
}
