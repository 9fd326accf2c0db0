import Foundation
import Tensor
import Testing

@testable import Medical

/// Affines with different storage orders: RAS, LPS, and a permuted one (storage axes S, L, A).
let testAffines: [(String, Affine)] = [
  ("RAS", Affine(rows: [[2, 0, 0, -30], [0, 1.5, 0, 12], [0, 0, 3, 7]])),
  ("LPS", Affine(rows: [[-2, 0, 0, 30], [0, -1.5, 0, -12], [0, 0, 3, 7]])),
  ("SLA", Affine(rows: [[0, -1, 0, 5], [0, 0, 2, -3], [2.5, 0, 0, 1]])),
]

/// A volume whose voxels hold world coordinate `axis` of their centre.
func worldCoordinateVolume(shape: [Int], affine: Affine, axis: Int) -> Volume<Float> {
  var values: [Float] = []
  for z in 0..<shape[2] {
    for y in 0..<shape[1] {
      for x in 0..<shape[0] {
        values.append(Float(affine.apply(to: [Double(x), Double(y), Double(z)])[axis]))
      }
    }
  }
  return Volume(geometry: Geometry(shape: shape, affine: affine), voxels: values)
}

@Suite("Reorientation and slicing")
struct SlicingTests {
  @Test("canonical order keeps every voxel at its world position", arguments: testAffines)
  func canonicalKeepsWorldPositions(_ name: String, _ affine: Affine) {
    let shape = [5, 4, 3]
    let reorientation = Reorientation(Geometry(shape: shape, affine: affine))
    #expect(Geometry(shape: shape, affine: affine).axisCodes.code == name)
    for axis in 0..<3 {
      let volume = worldCoordinateVolume(shape: shape, affine: affine, axis: axis)
      let canonical = reorientation.canonical(volume)
      #expect(canonical.geometry.axisCodes.code == "RAS")
      // Each canonical voxel holds its own world coordinate under the canonical affine.
      let expected = worldCoordinateVolume(
        shape: canonical.shape, affine: canonical.affine, axis: axis)
      for (a, b) in zip(canonical.voxels, expected.voxels) { #expect(abs(a - b) < 1e-4) }
      #expect(reorientation.fromCanonical(canonical.voxels) == volume.voxels)
    }
  }

  @Test("slices follow the stated display convention, with clamped neighbours as channels")
  func sliceLayout() {
    // Canonical RAS volume 4 x 3 x 2 whose value encodes its index.
    let shape = [4, 3, 2]
    let values = (0..<24).map { Float($0) }
    let volume = Volume(geometry: Geometry(shape: shape, affine: .identity), voxels: values)
    let slicer = CaseSlicer(image: volume)
    let axial = slicer.batch(.axial)
    #expect(axial.images.shape == [2, 3, 4, 3])
    // Row 0, column 0 of axial slice z is the most anterior, most right voxel (x 3, y 2).
    #expect(axial.images[0, 0, 0, 1] == volume[3, 2, 0])
    #expect(axial.images[1, 2, 3, 1] == volume[0, 0, 1])
    // Channel 0 is the previous slice, clamped at the bottom; channel 2 the next one.
    #expect(axial.images[0, 0, 0, 0] == volume[3, 2, 0])
    #expect(axial.images[0, 0, 0, 2] == volume[3, 2, 1])
    #expect(axial.images[1, 0, 0, 2] == volume[3, 2, 1])
    let coronal = slicer.batch(.coronal, indices: [1], neighbours: 0)
    #expect(coronal.images.shape == [1, 2, 4, 1])
    #expect(coronal.images[0, 0, 0, 0] == volume[3, 1, 1])  // superior at the top, right at left
    let sagittal = slicer.batch(.sagittal, indices: [0, 3], neighbours: 2)
    #expect(sagittal.images.shape == [2, 2, 3, 5])
    #expect(sagittal.images[1, 1, 0, 2] == volume[3, 2, 0])  // anterior at the left
    #expect(sagittal.images[1, 1, 0, 4] == volume[3, 2, 0])  // clamped at the right end
    #expect(sagittal.images[1, 1, 0, 0] == volume[1, 2, 0])
  }

  @Test(
    "slices of every view stack back to the original labels and storage order",
    arguments: testAffines)
  func sliceRoundTrip(_ name: String, _ affine: Affine) {
    var rng = SeededGenerator(seed: 3)
    let shape = [6, 5, 4]
    let geometry = Geometry(shape: shape, affine: affine)
    let labels = Volume(geometry: geometry, voxels: (0..<120).map { _ in UInt8(rng.next() % 4) })
    let image = Volume(geometry: geometry, voxels: labels.voxels.map { Float($0) * 10 })
    for spacing in [nil, 0.7] as [Double?] {
      let slicer = CaseSlicer(image: image, labels: labels, sliceSpacing: spacing)
      for view in AnatomicalView.allCases {
        let batch = slicer.batch(view)
        #expect(batch.images.shape[0] == slicer.sliceCount(view))
        // Without resampling, the centre channel and the labels agree (image = 10 * label).
        for (i, l) in batch.labels.enumerated() where spacing == nil {
          #expect(batch.images.scalars[i * 3 + 1] == Float(l) * 10)
        }
        let restored = slicer.assemble(batch.labels, view: view)
        #expect(
          restored.voxels == labels.voxels, "\(name) \(view) spacing \(String(describing: spacing))"
        )
        #expect(restored.geometry == image.geometry)
      }
    }
    // Coarser slices cannot round-trip exactly, but the shapes do.
    let coarse = CaseSlicer(image: image, labels: labels, sliceSpacing: 5)
    let batch = coarse.batch(.axial)
    #expect(coarse.assemble(batch.labels, view: .axial).shape == shape)
  }

  @Test("linear resampling of images, nearest of labels, and the way back")
  func resampling() {
    let geometry = Geometry(
      shape: [1, 1, 3], affine: Affine(rows: [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 2, 4]]))
    let image = Volume(geometry: geometry, voxels: [Float(0), 10, 20])
    let fine = Resampling.resample(image, axis: 2, spacing: 1)
    #expect(fine.voxels == [0, 5, 10, 15, 20])
    #expect(fine.affine[2, 2] == 1 && fine.affine[2, 3] == 4 && fine.spacing[2] == 1)
    let labels = Resampling.resample(
      Volume(geometry: geometry, voxels: [UInt8(1), 2, 3]), axis: 2, spacing: 0.8)
    #expect(labels.voxels == [1, 1, 2, 2, 3, 3])  // positions 0, .4, .8, 1.2, 1.6, 2.0 slices
    #expect(Resampling.resampledCount(3, from: 2, to: 3) == 2)
    let back = Resampling.restoreAxis(
      labels.voxels, shape: labels.shape, axis: 2, count: 3, spacing: 2, resampledSpacing: 0.8)
    #expect(back == [1, 2, 3])
  }

  @Test("majority vote of three views, with both tie rules")
  func majorityVote() {
    let axial: [UInt8] = [1, 1, 2, 0, 3, 1]
    let coronal: [UInt8] = [1, 2, 1, 2, 4, 2]
    let sagittal: [UInt8] = [2, 2, 1, 1, 5, 3]
    // 2 of 3 wins; all different -> axial.
    #expect(
      ViewFusion.majorityVote(axial: axial, coronal: coronal, sagittal: sagittal)
        == [1, 2, 1, 0, 3, 1])
    // Ties by summed probabilities over 6 classes: voxel 3 -> class 2, voxel 4 -> class 5,
    // voxel 5 -> class 0 (highest sum even though no view voted for it).
    let k = 6
    var p = [[Float]](repeating: [Float](repeating: 0, count: 6 * k), count: 3)
    p[0][3 * k + 0] = 0.5; p[1][3 * k + 2] = 0.6; p[2][3 * k + 1] = 0.55
    p[0][4 * k + 3] = 0.3; p[1][4 * k + 5] = 0.3; p[2][4 * k + 5] = 0.3
    p[0][5 * k + 0] = 0.4; p[1][5 * k + 0] = 0.4; p[2][5 * k + 3] = 0.7
    p[0][0 * k + 2] = 1; p[1][0 * k + 2] = 1; p[2][0 * k + 2] = 1  // no tie at voxel 0: ignored
    #expect(
      ViewFusion.majorityVote(
        axial: axial, coronal: coronal, sagittal: sagittal, probabilities: p, classCount: k)
        == [1, 2, 1, 2, 5, 0])
  }

  @Test(
    "TotalSegmentator CT (RAS) and MR (LPS) give the same anatomical planes",
    .enabled(if: hasTotalseg, "shared/data/totalseg-ct-mr is absent"))
  func totalsegOrientation() throws {
    let cases = [
      ("example_ct_sm.nii.gz", "example_seg.nii.gz", "RAS"),
      ("example_mr_sm.nii.gz", "example_seg_mr.nii.gz", "LPS"),
    ]
    if let described = nibabelDescribe(cases.map { totalsegRoot + "/" + $0.1 }, withData: false) {
      #expect(described.map(\.axcodes) == cases.map(\.2))
    } else {
      requireNibabelInCI()
    }
    for (imageName, labelName, codes) in cases {
      let image = try NIfTI.readImage(totalsegRoot + "/" + imageName)
      let labels = try NIfTI.readLabels(totalsegRoot + "/" + labelName)
      #expect(image.geometry.axisCodes.code == codes && labels.geometry.axisCodes.code == codes)
      #expect(image.spacing == [3, 3, 3])
      // Canonical order: spleen (1) is on the patient's left, liver (5) on the right, so the
      // spleen has the smaller R index; both are above... and in world mm the same holds.
      let canonical = labels.canonical()
      #expect(canonical.geometry.axisCodes.code == "RAS")
      func centroid(_ v: Volume<UInt8>, _ label: UInt8) -> [Double] {
        var sum = [0.0, 0, 0]
        var n = 0.0
        for z in 0..<v.shape[2] {
          for y in 0..<v.shape[1] {
            for x in 0..<v.shape[0] where v[x, y, z] == label {
              sum[0] += Double(x); sum[1] += Double(y); sum[2] += Double(z); n += 1
            }
          }
        }
        return sum.map { $0 / n }
      }
      let spleen = centroid(canonical, 1)
      let liver = centroid(canonical, 5)
      #expect(spleen[0] < liver[0], "\(labelName): spleen must be left of the liver")
      #expect(canonical.affine.apply(to: spleen)[0] < canonical.affine.apply(to: liver)[0])
      // On axial slices columns run from patient right to left: the spleen is further right in
      // the picture than the liver, in both scans.
      let slicer = CaseSlicer(image: image, labels: labels)
      let batch = slicer.batch(.axial, neighbours: 0)
      let (h, w) = slicer.sliceSize(.axial)
      var columns: [UInt8: (Double, Double)] = [:]
      for (i, l) in batch.labels.enumerated() where l == 1 || l == 5 {
        columns[l, default: (0, 0)].0 += Double(i % (h * w) % w)
        columns[l, default: (0, 0)].1 += 1
      }
      let spleenColumn = (columns[1]?.0 ?? 0) / (columns[1]?.1 ?? 1)
      let liverColumn = (columns[5]?.0 ?? 0) / (columns[5]?.1 ?? 1)
      #expect(spleenColumn > liverColumn, "\(labelName)")
      #expect(
        slicer.assemble(batch.labels, view: .axial) == labels.voxels.withGeometry(image.geometry))
    }
  }
}

extension Array where Element == UInt8 {
  func withGeometry(_ g: Geometry) -> Volume<UInt8> { Volume(geometry: g, voxels: self) }
}

@Suite("Pipeline")
struct PipelineTests {
  @Test(
    "window, slice, stack, vote, score and write a prediction with the original geometry",
    .enabled(if: hasTotalseg, "shared/data/totalseg-ct-mr is absent"))
  func endToEnd() throws {
    let image = try NIfTI.readImage(totalsegRoot + "/example_mr_sm.nii.gz")
    let labels = try NIfTI.readLabels(totalsegRoot + "/example_seg_mr.nii.gz")
    let slicer = CaseSlicer(image: image.windowed(.mri), labels: labels, sliceSpacing: 2)
    var perView: [[UInt8]] = []
    for view in AnatomicalView.allCases {
      let batch = slicer.batch(view)
      #expect(batch.images.shape[3] == 3)
      #expect(batch.images.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
      // A stand-in "network" that predicts the label, except on slice 0 of the view.
      let (h, w) = slicer.sliceSize(view)
      var predicted = batch.labels
      for i in 0..<(h * w) { predicted[i] = 0 }
      perView.append(slicer.assemble(predicted, view: view).voxels)
      // Two-channel per-pixel values (e.g. probabilities) come back in voxel-major order.
      let twoChannels = batch.labels.flatMap { [Float($0), -Float($0)] }
      let back = slicer.assemble(twoChannels, view: view, channels: 2)
      #expect(
        stride(from: 0, to: back.count, by: 2).allSatisfy {
          back[$0] == Float(labels.voxels[$0 / 2])
        })
    }
    let fused = ViewFusion.majorityVote(
      axial: perView[0], coronal: perView[1], sagittal: perView[2])
    // The views err on different voxels, so the vote recovers the labels everywhere.
    #expect(fused == labels.voxels)
    var evaluation = DiceEvaluation(classCount: 51)
    evaluation.add(prediction: perView[0], groundTruth: labels.voxels)
    #expect((evaluation.meanDice(case: 0) ?? 1) < 1)
    evaluation.add(prediction: fused, groundTruth: labels.voxels)
    #expect(evaluation.meanDice(case: 1) == 1)

    let out = temporaryDirectory("prediction") + "/prediction.nii.gz"
    try NIfTI.write(Volume(geometry: image.geometry, voxels: fused), to: out)
    let reread = try NIfTI.readLabels(out)
    #expect(reread.voxels == labels.voxels && reread.geometry == image.geometry)
    if let described = nibabelDescribe([out, totalsegRoot + "/example_mr_sm.nii.gz"]) {
      #expect(described[0].affine == described[1].affine)
      #expect(described[0].zooms == described[1].zooms)
      #expect(described[0].axcodes == "LPS" && described[0].dtype == "uint8")
      #expect(described[0].data == labels.voxels.map(Double.init))
    } else {
      requireNibabelInCI()
    }
  }
}
