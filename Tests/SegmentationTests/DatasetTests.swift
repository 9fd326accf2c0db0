import Foundation
import Taxonomy
import Testing

@testable import Segmentation

/// Writes a tiny RGB picture and a gray label of the same size.
private func writePair(
  image: String, label: String?, width: Int = 6, height: Int = 4, value: UInt8 = 7
) throws {
  try ImageFile.writePNG(
    RGBImage(width: width, height: height, red: 10, green: 20, blue: 30), to: image)
  if let label {
    try ImageFile.writePNG(
      LabelImage(
        width: width, height: height, values: [UInt8](repeating: value, count: width * height)),
      to: label)
  }
}

@Suite("dataset readers")
struct DatasetTests {
  @Test("Cityscapes layout: sorted samples, ids, labelIds/trainIds, missing label named")
  func cityscapes() throws {
    let root = try TestPaths.temporaryDirectory("cs")
    defer { try? FileManager.default.removeItem(atPath: root) }
    for (city, stems) in [
      ("bonn", ["bonn_000001_000019", "bonn_000000_000019"]), ("aachen", ["aachen_000000_000019"]),
    ] {
      for stem in stems {
        try writePair(
          image: "\(root)/leftImg8bit/train/\(city)/\(stem)_leftImg8bit.png",
          label: "\(root)/gtFine/train/\(city)/\(stem)_gtFine_labelIds.png")
      }
    }
    let dataset = try Dataset.cityscapes(root: root, split: "train")
    #expect(dataset.classSetName == "cityscapes-34")
    #expect(
      dataset.samples.map(\.id) == [
        "aachen_000000_000019", "bonn_000000_000019", "bonn_000001_000019",
      ])
    #expect(dataset.isLabeled)
    var table = [UInt8](repeating: 255, count: 256)
    table[7] = 0
    let sample = try dataset.load(1, labelTable: table)
    #expect(sample.label?.values.allSatisfy { $0 == 0 } == true)
    #expect(try dataset.load(1).label?.values.allSatisfy { $0 == 7 } == true)

    let missing = "\(root)/gtFine/train/aachen/aachen_000000_000019_gtFine_labelTrainIds.png"
    #expect(
      throws: DatasetError.missingFile(
        path: missing,
        context: "label of \(root)/leftImg8bit/train/aachen/aachen_000000_000019_leftImg8bit.png")
    ) {
      try Dataset.cityscapes(root: root, split: "train", labels: .trainIds)
    }
    let unlabeled = try Dataset.cityscapes(root: root, split: "train", labels: nil)
    #expect(unlabeled.samples.allSatisfy { $0.labelPath == nil })
    #expect(
      throws: DatasetError.missingFile(
        path: "\(root)/leftImg8bit/val", context: "Cityscapes image folder")
    ) {
      try Dataset.cityscapes(root: root, split: "val")
    }
  }

  @Test("Mapillary v1.2 layout, mini layout, optional labels")
  func mapillary() throws {
    let root = try TestPaths.temporaryDirectory("mv")
    defer { try? FileManager.default.removeItem(atPath: root) }
    try writePair(image: "\(root)/training/images/b.png", label: nil)
    try writePair(image: "\(root)/training/images/a.png", label: nil)
    let palette = (0..<66).map { LabelColor(UInt8($0), 0, 0) }
    for id in ["a", "b"] {
      let indices = LabelImage(width: 6, height: 4, values: [UInt8](repeating: 55, count: 24))
      try ImageFile.writePNG(
        PaletteImage(indices: indices, palette: palette),
        to: "\(root)/training/v1.2/labels/\(id).png")
    }
    try ImageFile.writeBytes([], to: "\(root)/training/images/notes.txt")
    let dataset = try Dataset.mapillaryVistas(root: root, split: "training")
    #expect(dataset.classSetName == "mapillary-vistas-v1.2")
    #expect(dataset.samples.map(\.id) == ["a", "b"])
    #expect(try dataset.load(0).label?.values.first == 55)

    try FileManager.default.removeItem(atPath: "\(root)/training/v1.2/labels/b.png")
    #expect(
      throws: DatasetError.missingFile(
        path: "\(root)/training/v1.2/labels/b.png",
        context: "label of \(root)/training/images/b.png")
    ) {
      try Dataset.mapillaryVistas(root: root, split: "training")
    }
    let partial = try Dataset.mapillaryVistas(root: root, split: "training", requireLabels: false)
    #expect(partial.samples.map { $0.labelPath != nil } == [true, false])
    #expect(throws: DatasetError.self) {
      try Dataset.mapillaryVistas(root: root, split: "validation")
    }
  }

  @Test("generic list: relative paths, unlabelled lines, comments, errors with line numbers")
  func listFile() throws {
    let root = try TestPaths.temporaryDirectory("list")
    defer { try? FileManager.default.removeItem(atPath: root) }
    try writePair(image: "\(root)/img/x.png", label: "\(root)/lab/x.png")
    try writePair(image: "\(root)/img/y z.png", label: nil)
    let list = "\(root)/list.txt"
    try ImageFile.writeBytes(Array("# pairs\nimg/x.png lab/x.png\n\nimg/y z.png\n".utf8), to: list)
    // "img/y z.png" without a tab is two fields, the second missing.
    #expect(throws: DatasetError.missingFile(path: "img/y", context: "image at \(list):4")) {
      try Dataset.list(file: list, classSetName: "custom")
    }
    try ImageFile.writeBytes(Array("# pairs\nimg/x.png\tlab/x.png\n\nimg/y z.png\n".utf8), to: list)
    let dataset = try Dataset.list(file: list, classSetName: "custom")
    #expect(
      dataset.samples == [
        SampleReference(
          id: "img/x", imagePath: "\(root)/img/x.png", labelPath: "\(root)/lab/x.png"),
        SampleReference(id: "img/y z", imagePath: "\(root)/img/y z.png", labelPath: nil),
      ])
    #expect(!dataset.isLabeled)
    try ImageFile.writeBytes(Array("img/x.png lab/x.png extra\n".utf8), to: list)
    #expect(
      throws: DatasetError.malformedList(
        file: list, line: 1, reason: "expected 'image [label]', found 3 fields")
    ) {
      try Dataset.list(file: list, classSetName: "custom")
    }
    try ImageFile.writeBytes(Array("\n# nothing\n".utf8), to: list)
    #expect(throws: DatasetError.empty(path: list)) {
      try Dataset.list(file: list, classSetName: "custom")
    }
    #expect(throws: DatasetError.missingFile(path: "\(root)/none.txt", context: "list file")) {
      try Dataset.list(file: "\(root)/none.txt", classSetName: "custom")
    }
  }

  @Test("CamVid SegNet list with absolute /SegNet paths resolved by folder and file name")
  func camvidSegNetPaths() throws {
    let root = try TestPaths.temporaryDirectory("camvid")
    defer { try? FileManager.default.removeItem(atPath: root) }
    try writePair(
      image: "\(root)/train/0001TP_006690.png", label: "\(root)/trainannot/0001TP_006690.png")
    let list = "\(root)/train.txt"
    try ImageFile.writeBytes(
      Array(
        ("/SegNet/CamVid/train/0001TP_006690.png "
          + "/SegNet/CamVid/trainannot/0001TP_006690.png\n").utf8),
      to: list)
    let dataset = try Dataset.camVid(listFile: list)
    #expect(dataset.classSetName == "camvid-11")
    #expect(
      dataset.samples == [
        SampleReference(
          id: "0001TP_006690", imagePath: "\(root)/train/0001TP_006690.png",
          labelPath: "\(root)/trainannot/0001TP_006690.png")
      ])
    try ImageFile.writeBytes(
      Array("/SegNet/CamVid/train/0001TP_999.png /SegNet/CamVid/trainannot/0001TP_999.png\n".utf8),
      to: list)
    #expect(
      throws: DatasetError.missingFile(
        path: "/SegNet/CamVid/train/0001TP_999.png", context: "image at \(list):1")
    ) {
      try Dataset.camVid(listFile: list)
    }
  }

  @Test("image/label size mismatch and bad tables are refused")
  func mismatch() throws {
    let root = try TestPaths.temporaryDirectory("mm")
    defer { try? FileManager.default.removeItem(atPath: root) }
    try writePair(image: "\(root)/a.png", label: nil, width: 6, height: 4)
    try writePair(image: "\(root)/b.png", label: "\(root)/b_label.png", width: 5, height: 4)
    let ref = SampleReference(id: "a", imagePath: "\(root)/a.png", labelPath: "\(root)/b_label.png")
    #expect(
      throws: DatasetError.sizeMismatch(
        imagePath: "\(root)/a.png", imageWidth: 6, imageHeight: 4, labelPath: "\(root)/b_label.png",
        labelWidth: 5, labelHeight: 4)
    ) { try Dataset.load(ref) }
    #expect(throws: DatasetError.invalidLabelTable(count: 3)) {
      try Dataset.load(ref, labelTable: [1, 2, 3])
    }
    let gone = SampleReference(id: "g", imagePath: "\(root)/gone.png")
    #expect(throws: DatasetError.image(.fileNotFound(path: "\(root)/gone.png"))) {
      try Dataset.load(gone)
    }
  }
}

@Suite("dataset readers on shared/data")
struct RealDatasetTests {
  @Test("cityscapes-mini", .enabled(if: TestPaths.hasSharedData("cityscapes-mini")))
  func cityscapesMini() throws {
    let dataset = try Dataset.cityscapes(
      root: TestPaths.sharedData + "/cityscapes-mini", split: "val")
    #expect(dataset.samples.map(\.id) == ["frankfurt_000000_000294"])
    let sample = try dataset.load(0)
    #expect(sample.image.width == 256 && sample.label?.height == 128)
    let train = try Dataset.cityscapes(
      root: TestPaths.sharedData + "/cityscapes-mini", split: "val", labels: .trainIds)
    #expect(train.classSetName == "cityscapes-19")
  }

  @Test(
    "mapillary-mini (flat v1.2 folder)", .enabled(if: TestPaths.hasSharedData("mapillary-mini")))
  func mapillaryMini() throws {
    let dataset = try Dataset.mapillaryVistas(root: TestPaths.sharedData + "/mapillary-mini")
    #expect(dataset.count == 1)
    let sample = try dataset.load(0)
    #expect(Set(sample.label?.values ?? []) == [17, 44, 45])
  }

  @Test("CamVid train.txt and val.txt", .enabled(if: TestPaths.hasSharedData("camvid")))
  func camvid() throws {
    let train = try Dataset.camVid(listFile: TestPaths.sharedData + "/camvid/train.txt")
    let val = try Dataset.camVid(listFile: TestPaths.sharedData + "/camvid/val.txt")
    #expect(train.count == 367 && val.count == 101)
    let dusk = train.filtered { $0.id.hasPrefix("0001TP") }
    #expect(dusk.count == 62 && dusk.isLabeled && dusk.classSetName == "camvid-11")
    let unlabeled = dusk.withoutLabels()
    #expect(unlabeled.count == 62 && unlabeled.samples.allSatisfy { $0.labelPath == nil })
    #expect(unlabeled.samples.map(\.imagePath) == dusk.samples.map(\.imagePath))
    let sample = try val.load(0)
    #expect(sample.image.width == 480 && sample.label?.width == 480)
  }
}
