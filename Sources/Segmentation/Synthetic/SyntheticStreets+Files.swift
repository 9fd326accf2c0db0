import Taxonomy
extension SyntheticStreets {
  /// The colour table of Mapillary Vistas v1.2 label PNGs, index = class id (0...65).
  ///
  /// From the dataset's `config.json` order as listed in facebookresearch/Mask2Former
  /// `register_mapillary_vistas.py` (see shared/reference/TAXONOMIES.md §2.1); index 17 is
  /// building (70,70,70), 65 is void (0,0,0).
  public static let mapillaryPalette: [LabelColor] = [
    (165, 42, 42), (0, 192, 0), (196, 196, 196), (190, 153, 153), (180, 165, 180), (90, 120, 150),
    (102, 102, 156), (128, 64, 255), (140, 140, 200), (170, 170, 170), (250, 170, 160),
    (96, 96, 96), (230, 150, 140), (128, 64, 128), (110, 110, 110), (244, 35, 232),
    (150, 100, 100), (70, 70, 70), (150, 120, 90), (220, 20, 60), (255, 0, 0), (255, 0, 100),
    (255, 0, 200), (200, 128, 128), (255, 255, 255), (64, 170, 64), (230, 160, 50),
    (70, 130, 180), (190, 255, 255), (152, 251, 152), (107, 142, 35), (0, 170, 30),
    (255, 255, 128), (250, 0, 30), (100, 140, 180), (220, 220, 220), (220, 128, 128),
    (222, 40, 40), (100, 170, 30), (40, 40, 40), (33, 33, 33), (100, 128, 160), (142, 0, 0),
    (70, 100, 150), (210, 170, 100), (153, 153, 153), (128, 128, 128), (0, 0, 80),
    (250, 170, 30), (192, 192, 192), (220, 220, 0), (140, 140, 20), (119, 11, 32), (150, 0, 255),
    (0, 60, 100), (0, 0, 142), (0, 0, 90), (0, 0, 230), (0, 80, 100), (128, 64, 64), (0, 0, 110),
    (0, 0, 70), (0, 0, 192), (32, 32, 32), (120, 10, 10), (0, 0, 0),
  ].map { LabelColor($0.0, $0.1, $0.2) }

  /// Writes `count` scenes of a domain to disk in the domain's dataset layout and returns the
  /// dataset read back through the matching reader.
  ///
  /// - Source: Cityscapes layout, `leftImg8bit/<split>/synth/synth_<i>_000019_leftImg8bit.png`
  ///   (RGB) and `gtFine/<split>/synth/synth_<i>_000019_gtFine_labelIds.png` (8-bit gray
  ///   labelIds); class set `cityscapes-34`.
  /// - Target: Mapillary Vistas v1.2 layout, `<split>/images/synth_<i>.png` (RGB PNG; the
  ///   reader accepts PNG pictures) and `<split>/v1.2/labels/synth_<i>.png` (palette PNG, indices
  ///   = the 66 class ids, ``mapillaryPalette`` as colour table); class set `mapillary-vistas-v1.2`.
  ///
  /// Scene `i` is ``scene(domain:index:seed:width:height:)`` with index `firstIndex + i`.
  /// - Throws: `DatasetError.image` when a file cannot be written, or the reader's errors.
  @discardableResult
  public static func writeDataset(
    domain: Domain, root: String, split: String, count: Int, seed: UInt64, width: Int = 128,
    height: Int = 64, firstIndex: Int = 0
  ) throws(DatasetError) -> Dataset {
    precondition(count > 0, "write at least one scene")
    do {
      for i in 0..<count {
        let index = firstIndex + i
        let s = scene(domain: domain, index: index, seed: seed, width: width, height: height)
        let image = RGBImage(width: width, height: height, pixels: s.rgb)
        let labels = LabelImage(width: width, height: height, values: s.labels)
        let number = String(index).leftPadded(to: 6)
        switch domain {
        case .source:
          let stem = "synth_\(number)_000019"
          try ImageFile.writePNG(
            image, to: "\(root)/leftImg8bit/\(split)/synth/\(stem)_leftImg8bit.png")
          try ImageFile.writePNG(
            labels, to: "\(root)/gtFine/\(split)/synth/\(stem)_gtFine_labelIds.png")
        case .target:
          let stem = "synth_\(number)"
          try ImageFile.writePNG(image, to: "\(root)/\(split)/images/\(stem).png")
          try ImageFile.writePNG(
            PaletteImage(indices: labels, palette: mapillaryPalette),
            to: "\(root)/\(split)/v1.2/labels/\(stem).png")
        }
      }
    } catch {
      throw .image(error)
    }
    switch domain {
    case .source: return try Dataset.cityscapes(root: root, split: split)
    case .target: return try Dataset.mapillaryVistas(root: root, split: split)
    }
  }
}

extension String {
  fileprivate func leftPadded(to length: Int) -> String {
    count >= length ? self : String(repeating: "0", count: length - count) + self
  }
}
