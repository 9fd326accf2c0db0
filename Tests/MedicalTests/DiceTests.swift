import Foundation
import Tensor
import TestSupport
import Testing

@testable import Medical

/// Overlap counts per case computed by numpy (scripts/make_nifti_fixtures.py dice).
func numpyCounts(
  cases: [(prediction: [UInt8], groundTruth: [UInt8])], classCount: Int, table: [UInt8]?
)
  -> [[OverlapCounts]]?
{
  guard let python = nibabelPython else { return nil }
  let dir = temporaryDirectory("dice")
  var files: [String] = []
  for (i, c) in cases.enumerated() {
    let p = dir + "/p\(i).bin"
    let g = dir + "/g\(i).bin"
    guard (try? Data(c.prediction).write(to: URL(fileURLWithPath: p))) != nil,
      (try? Data(c.groundTruth).write(to: URL(fileURLWithPath: g))) != nil
    else { return nil }
    files += [p, g]
  }
  let tableArgument = table.map { $0.map(String.init).joined(separator: ",") } ?? "-"
  struct Row: Decodable { var tp: Int, p: Int, g: Int }
  guard let out = run(python, [script, "dice", String(classCount), tableArgument] + files),
    let rows = try? JSONDecoder().decode([[Row]].self, from: out)
  else { return nil }
  return rows.map {
    $0.map { OverlapCounts(truePositives: $0.tp, predicted: $0.p, groundTruth: $0.g) }
  }
}

@Suite("Dice")
struct DiceTests {
  @Test(
    "per-case and global Dice match numpy, for fine and coarse classes",
    .enabled(if: PeerPython.enabled(nibabelPython), PeerPython.missing("numpy and nibabel")))
  func matchesNumpy() throws {
    var rng = SeededGenerator(seed: 11)
    var cases: [(prediction: [UInt8], groundTruth: [UInt8])] = []
    for _ in 0..<4 {
      // A blob-like ground truth and a noisy prediction over 3 classes (and 255 = ignore).
      let truth = (0..<(9 * 8 * 7)).map { i -> UInt8 in
        let x = i % 9
        return x < 3 ? 0 : (x < 6 ? 1 : 2)
      }
      let prediction = truth.map { t -> UInt8 in
        let r = rng.next() % 10
        return r < 7 ? t : (r < 9 ? UInt8(r % 3) : 255)
      }
      cases.append((prediction, truth))
    }
    var fine = DiceEvaluation(classCount: 3)
    var coarse = DiceEvaluation(classCount: 2, table: [0, 1, 1])
    for c in cases {
      fine.add(prediction: c.prediction, groundTruth: c.groundTruth)
      coarse.add(prediction: c.prediction, groundTruth: c.groundTruth)
    }
    for evaluation in [fine, coarse] {
      let expected = try #require(
        numpyCounts(cases: cases, classCount: evaluation.classCount, table: evaluation.table))
      #expect(evaluation.perCase == expected)
      var total = [OverlapCounts](repeating: OverlapCounts(), count: evaluation.classCount)
      for (caseIndex, counts) in expected.enumerated() {
        // Dice from numpy's counts, by the textbook formula.
        for c in 0..<counts.count {
          total[c] = total[c] + counts[c]
          let d =
            2 * Double(counts[c].truePositives)
            / Double(counts[c].predicted + counts[c].groundTruth)
          #expect(abs((evaluation.dice(case: caseIndex)[c] ?? -1) - d) < 1e-12)
        }
      }
      for c in 0..<evaluation.classCount {
        let global =
          2 * Double(total[c].truePositives)
          / Double(total[c].predicted + total[c].groundTruth)
        #expect(abs((evaluation.globalDice[c] ?? -1) - global) < 1e-12)
      }
    }
    // Merging anterior and posterior can only help: errors between them disappear.
    #expect((coarse.globalDice[1] ?? 0) > (fine.globalDice[1] ?? 1))
  }

  @Test("empty classes: both empty is undefined and excluded, predicted-but-absent scores 0")
  func emptyPolicy() {
    var evaluation = DiceEvaluation(classCount: 3)
    evaluation.add(prediction: [0, 1, 1, 0], groundTruth: [0, 1, 0, 0])  // class 2 absent
    evaluation.add(prediction: [0, 2, 0, 0], groundTruth: [0, 0, 0, 0])  // 1 absent, 2 predicted
    #expect(evaluation.dice(case: 0) == [0.8, 2.0 / 3.0, nil])
    #expect(evaluation.dice(case: 1) == [6.0 / 7.0, nil, 0])
    #expect(evaluation.meanDice(case: 0) == 2.0 / 3.0)  // class 2 excluded
    #expect(evaluation.meanDice(case: 1) == 0)
    #expect(evaluation.meanDicePerClass[1] == 2.0 / 3.0)  // case 1 excluded for class 1
    #expect(evaluation.meanDicePerClass[2] == 0)
    #expect(evaluation.globalDice[2] == 0)
    #expect(evaluation.meanGlobalDice == (2.0 / 3.0) / 2)
    var empty = DiceEvaluation(classCount: 2)
    empty.add(prediction: [0, 0], groundTruth: [0, 0])
    #expect(empty.meanDice(case: 0) == nil && empty.meanGlobalDice == nil)
    #expect(empty.meanDice(case: 0, includingBackground: true) == 1)
  }
}

@Suite("Pre-processing and datasets")
struct PreprocessingTests {
  @Test("CT window and MRI percentiles map to [0, 1]")
  func windows() {
    #expect(IntensityWindow.ct.apply(to: [-1000, -100, 70, 240, 3000]) == [0, 0, 0.5, 1, 1])
    let ramp = (0...100).map { Float($0) }
    let bounds = IntensityWindow.mri.bounds(for: ramp.reversed())
    #expect(abs(bounds.lower - 0.5) < 1e-5 && abs(bounds.upper - 99.5) < 1e-5)
    let scaled = IntensityWindow.mri.apply(to: ramp)
    #expect(scaled.first == 0 && scaled.last == 1 && abs(scaled[50] - 0.5) < 1e-6)
    #expect(IntensityWindow.mri.apply(to: [3, 3, 3]) == [0, 0, 0])
    #expect(percentile([1, 2, 3, 4], 50) == 2.5)
  }

  @Test("folder pairs match by file name and report the unmatched one")
  func folderPairs() throws {
    let root = temporaryDirectory("pairs")
    let fm = FileManager.default
    try fm.createDirectory(atPath: root + "/img", withIntermediateDirectories: true)
    try fm.createDirectory(atPath: root + "/lab", withIntermediateDirectories: true)
    let g = Geometry(shape: [2, 2, 1], affine: .identity)
    for name in ["b", "a"] {
      try NIfTI.write(
        Volume(geometry: g, voxels: [Float(1), 2, 3, 4]), to: root + "/img/\(name).nii.gz")
      try NIfTI.write(
        Volume(geometry: g, voxels: [UInt8(0), 1, 1, 0]), to: root + "/lab/\(name).nii.gz")
    }
    #expect(fm.createFile(atPath: root + "/img/.hidden.nii.gz", contents: Data()))
    #expect(fm.createFile(atPath: root + "/img/notes.txt", contents: Data()))
    let dataset = try MedicalDataset.folderPairs(images: root + "/img", labels: root + "/lab")
    #expect(dataset.cases.map(\.name) == ["a", "b"])
    let (image, labels) = try dataset.cases[0].load()
    #expect(image.voxels == [1, 2, 3, 4] && labels.voxels == [0, 1, 1, 0])
    try NIfTI.write(Volume(geometry: g, voxels: [Float(1), 2, 3, 4]), to: root + "/img/c.nii")
    #expect(throws: MedicalError.unmatchedPair(name: "c", folder: root + "/lab")) {
      try MedicalDataset.folderPairs(images: root + "/img", labels: root + "/lab")
    }
    // A label map of another shape is refused when the case is loaded.
    try NIfTI.write(
      Volume(
        geometry: Geometry(shape: [4, 1, 1], affine: .identity), voxels: [UInt8(0), 1, 1, 0]),
      to: root + "/lab/c.nii")
    let mismatched = try MedicalDataset.folderPairs(images: root + "/img", labels: root + "/lab")
    #expect(
      throws: MedicalError.shapeMismatch(
        image: root + "/img/c.nii", label: root + "/lab/c.nii", imageShape: [2, 2, 1],
        labelShape: [4, 1, 1])
    ) { try mismatched.cases[2].load() }
  }

  @Test("dataset.json errors name the file and the problem")
  func decathlonErrors() throws {
    let root = temporaryDirectory("msd")
    let json = root + "/dataset.json"
    try #"{"name": "T", "training": [{"image": "./imagesTr/x.nii.gz"}]}"#.write(
      toFile: json, atomically: true, encoding: .utf8)
    #expect(
      throws: MedicalError.badDatasetDescription(
        path: json, reason: "missing key 'label' in training.[0]")
    ) {
      try MedicalDataset.decathlon(root: root)
    }
    try #"{"training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}]}"#
      .write(toFile: json, atomically: true, encoding: .utf8)
    #expect(throws: MedicalError.missingFile(path: root + "/imagesTr/x.nii.gz", referencedBy: json))
    {
      try MedicalDataset.decathlon(root: root)
    }
    try #"{"labels": {"0": "bg", "2": "x"}, "training": []}"#
      .write(toFile: json, atomically: true, encoding: .utf8)
    #expect(
      throws: MedicalError.badDatasetDescription(
        path: json, reason: "labels ids are not 0, 1, 2, ...")
    ) {
      try MedicalDataset.decathlon(root: root)
    }
  }

  @Test(
    "all 200 hippocampus volumes load through dataset.json (mixed dtypes), quickly",
    .enabled(if: hasHippocampus, "shared/data/hippocampus-msd is absent"))
  func hippocampus() throws {
    let start = Date()
    let dataset = try MedicalDataset.decathlon(root: hippocampusRoot)
    #expect(dataset.cases.count == 200)
    #expect(dataset.classNames == ["background", "Anterior", "Posterior"])
    #expect(dataset.modalities == ["MRI"])
    var datatypes: [NIfTIDataType: Int] = [:]
    var labelDatatypes = Set<NIfTIDataType>()
    var volumes: [(image: Volume<Float>, labels: Volume<UInt8>)] = []
    for c in dataset.cases {
      datatypes[try NIfTI.readHeader(c.image).datatype, default: 0] += 1
      labelDatatypes.insert(try NIfTI.readHeader(c.label).datatype)
      volumes.append(try c.load())
    }
    let seconds = Date().timeIntervalSince(start)
    #expect(datatypes[.float32, default: 0] > 0 && datatypes[.uint8, default: 0] > 0)
    #expect(labelDatatypes == [.uint8, .float32] || labelDatatypes == [.uint8])
    var evaluation = DiceEvaluation(classCount: 2, table: [0, 1, 1])
    for (i, (image, labels)) in volumes.enumerated() {
      #expect(image.geometry.axisCodes.code == "RAS")
      var histogram = [Int](repeating: 0, count: 256)
      for v in labels.voxels { histogram[Int(v)] += 1 }
      #expect(histogram[0] > 0 && histogram[1] > 0 && histogram[2] > 0)
      #expect(histogram[0] + histogram[1] + histogram[2] == labels.voxels.count)
      if i % 20 == 0 {
        let windowed = image.windowed(.mri)
        #expect(windowed.voxels.allSatisfy { $0 >= 0 && $0 <= 1 })
        evaluation.add(prediction: labels.voxels, groundTruth: labels.voxels)
      }
    }
    #expect(evaluation.globalDice == [1, 1])
    #if DEBUG
      let limit = 60.0  // unoptimised builds decode about 20x slower
    #else
      let limit = 10.0
    #endif
    #expect(seconds < limit, "reading 200 cases took \(seconds) s")
    print(
      "hippocampus: read 200 cases in \(String(format: "%.2f", seconds)) s; "
        + "image dtypes \(datatypes)"
    )
  }
}
