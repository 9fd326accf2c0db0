import Foundation
import TestSupport
import Testing

@testable import Medical

@Suite("NIfTI against nibabel")
struct NIfTINibabelTests {
  @Test(
    "files written by nibabel read back with the same values, spacing and axis codes",
    .enabled(if: PeerPython.enabled(nibabelPython), PeerPython.missing("nibabel")))
  func readsNibabelFixtures() throws {
    let dir = try #require(nibabelFixtures, PeerPython.missing("nibabel"))
    let manifest = try JSONDecoder().decode(
      [NibabelDescription].self,
      from: Data(contentsOf: URL(fileURLWithPath: dir + "/manifest.json")))
    #expect(manifest.count >= 52)
    #expect(manifest.contains { $0.name == "oblique_b_qform.nii" && $0.axcodes == "SLA" })
    var dtypes = Set<String>()
    for c in manifest {
      let name = try #require(c.name)
      let path = dir + "/" + name
      let volume = try NIfTI.readImage(path)
      let header = try NIfTI.readHeader(path)
      dtypes.insert(c.dtype)
      #expect(volume.shape == c.shape, "\(name)")
      for i in 0..<3 { #expect(abs(volume.spacing[i] - c.zooms[i]) < 1e-6, "\(name)") }
      #expect(volume.geometry.axisCodes.code == c.axcodes, "\(name)")
      for r in 0..<3 {
        for k in 0..<4 { #expect(abs(volume.affine[r, k] - c.affine[r][k]) < 1e-4, "\(name)") }
      }
      #expect(header.isBigEndian == (c.big_endian ?? false), "\(name)")
      let expected = readFloat64(path + ".f64")
      #expect(expected.count == volume.voxels.count, "\(name)")
      var maxDifference = 0.0
      for (a, b) in zip(volume.voxels, expected) {
        maxDifference = max(maxDifference, abs(Double(a) - b) / max(1, abs(b)))
      }
      #expect(maxDifference < 1e-6, "\(name): max relative difference \(maxDifference)")
      // Our canonical order is nibabel's as_closest_canonical: same shape, affine and voxels.
      let canonical = volume.canonical()
      #expect(canonical.shape == c.canonical_shape, "\(name)")
      #expect(canonical.geometry.axisCodes.code == "RAS", "\(name)")
      let canonicalAffine = try #require(c.canonical_affine)
      for r in 0..<3 {
        for k in 0..<4 {
          #expect(abs(canonical.affine[r, k] - canonicalAffine[r][k]) < 1e-4, "\(name)")
        }
      }
      let expectedCanonical = readFloat64(path + ".canon.f64")
      #expect(
        zip(canonical.voxels, expectedCanonical).allSatisfy {
          abs(Double($0) - $1) <= 1e-6 * max(1, abs($1))
        }
          && expectedCanonical.count == canonical.voxels.count, "\(name)")
    }
    #expect(
      dtypes.isSuperset(of: ["uint8", "int8", "int16", "uint16", "int32", "float32", "float64"]))
    let scaled = try NIfTI.readHeader(dir + "/scaled_int16_lps.nii.gz")
    #expect(scaled.scaleSlope == 0.5 && scaled.scaleIntercept == -3)
    #expect(scaled.datatype == .int16)
  }

  @Test(
    "files we write are read by nibabel with the same values and geometry",
    .enabled(if: PeerPython.enabled(nibabelPython), PeerPython.missing("nibabel")))
  func nibabelReadsOurFiles() throws {
    let dir = temporaryDirectory("write")
    let lps = Affine(rows: [[-2, 0, 0, 30.5], [0, -1.5, 0, -12.25], [0, 0, 3, 7]])
    let sla = Affine(rows: [[0, -1, 0, 5], [0, 0, 2, -3], [2.5, 0, 0, 1]])
    let shape = [5, 4, 3]
    let image = Volume(
      geometry: Geometry(shape: shape, affine: lps),
      voxels: (0..<60).map { Float($0) * 1.25 - 20 })
    let labels = Volume(
      geometry: Geometry(shape: shape, affine: sla), voxels: (0..<60).map { UInt8($0 % 7) })
    var paths: [String] = []
    for ext in [".nii", ".nii.gz"] {
      try NIfTI.write(image, to: dir + "/image" + ext)
      try NIfTI.write(labels, to: dir + "/labels" + ext)
      paths += [dir + "/image" + ext, dir + "/labels" + ext]
    }
    // A qform-only file from nibabel keeps its qform when we write it back.
    var extra: [(String, Volume<Float>)] = []
    if let fixtures = nibabelFixtures {
      let qformOnly = try NIfTI.readImage(fixtures + "/qform_only_sla.nii")
      #expect(qformOnly.geometry.sformCode == 0 && qformOnly.geometry.qformCode == 1)
      try NIfTI.write(qformOnly, to: dir + "/qform.nii.gz")
      paths.append(dir + "/qform.nii.gz")
      extra.append(("qform", qformOnly))
    }
    let described = try #require(nibabelDescribe(paths))
    #expect(described.count == paths.count)
    let expected: [(Geometry, [Double])] =
      [
        (image.geometry, image.voxels.map(Double.init)),
        (labels.geometry, labels.voxels.map(Double.init)),
      ]
      + [
        (image.geometry, image.voxels.map(Double.init)),
        (labels.geometry, labels.voxels.map(Double.init)),
      ]
      + extra.map { ($0.1.geometry, $0.1.voxels.map(Double.init)) }
    for (d, (geometry, values)) in zip(described, expected) {
      #expect(d.shape == geometry.shape)
      #expect(d.axcodes == geometry.axisCodes.code)
      for i in 0..<3 { #expect(abs(d.zooms[i] - geometry.spacing[i]) < 1e-6) }
      for r in 0..<3 {
        for k in 0..<4 { #expect(abs(d.affine[r][k] - geometry.affine[r, k]) < 1e-4) }
      }
      #expect(d.data == values)
    }
    #expect(described[1].dtype == "uint8" && described[0].dtype == "float32")
    #expect(described[0].axcodes == "LPS" && described[1].axcodes == "SLA")
  }
}

@Suite("NIfTI reading and writing")
struct NIfTITests {
  func sampleFile(_ name: String, gzip: Bool = false) throws -> String {
    let dir = temporaryDirectory("bad")
    let volume = Volume(
      geometry: Geometry(shape: [4, 3, 2], affine: .identity),
      voxels: (0..<24).map { Float($0) })
    let path = dir + "/" + name + (gzip ? ".nii.gz" : ".nii")
    try NIfTI.write(volume, to: path)
    return path
  }

  func patch(_ path: String, _ edit: (inout [UInt8]) -> Void) throws {
    var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    edit(&bytes)
    try Data(bytes).write(to: URL(fileURLWithPath: path))
  }

  func put16(_ bytes: inout [UInt8], _ value: Int16, at offset: Int) {
    let v = UInt16(bitPattern: value)
    bytes[offset] = UInt8(v & 0xff)
    bytes[offset + 1] = UInt8(v >> 8)
  }

  @Test("round trip of images and labels, plain and gzip")
  func roundTrip() throws {
    for gzip in [false, true] {
      let path = try sampleFile("round", gzip: gzip)
      let image = try NIfTI.readImage(path)
      #expect(image.voxels == (0..<24).map { Float($0) })
      #expect(image.shape == [4, 3, 2])
      #expect(image.geometry.axisCodes.code == "RAS")
      let labels = try NIfTI.readLabels(path)
      #expect(labels.voxels == (0..<24).map { UInt8($0) })
      let out = path.replacingOccurrences(of: "round", with: "labels")
      try NIfTI.write(labels, to: out)
      #expect(try NIfTI.readLabels(out) == labels)
    }
  }

  @Test("bad headers and data are refused with an error naming the file")
  func badFiles() throws {
    var path = try sampleFile("size")
    try patch(path) { $0[0] = 0x5d }
    #expect(throws: MedicalError.badHeaderSize(path: path, value: 349)) {
      try NIfTI.readImage(path)
    }
    path = try sampleFile("dim0")
    try patch(path) { put16(&$0, 0, at: 40) }
    #expect(throws: MedicalError.badDimensionCount(path: path, value: 0)) {
      try NIfTI.readImage(path)
    }
    path = try sampleFile("dim8")
    try patch(path) { put16(&$0, 8, at: 40) }
    #expect(throws: MedicalError.badDimensionCount(path: path, value: 8)) {
      try NIfTI.readImage(path)
    }
    path = try sampleFile("negative")
    try patch(path) { put16(&$0, -3, at: 44) }
    #expect(throws: MedicalError.badDimensions(path: path, dimensions: [4, -3, 2])) {
      try NIfTI.readImage(path)
    }
    path = try sampleFile("fourd")
    try patch(path) {
      put16(&$0, 4, at: 40); put16(&$0, 5, at: 48)
    }
    #expect(throws: MedicalError.badDimensions(path: path, dimensions: [4, 3, 2, 5])) {
      try NIfTI.readImage(path)
    }
    path = try sampleFile("datatype")
    try patch(path) { put16(&$0, 128, at: 70) }  // RGB24
    #expect(throws: MedicalError.unsupportedDatatype(path: path, code: 128)) {
      try NIfTI.readImage(path)
    }
    path = try sampleFile("magic")
    try patch(path) { $0[344] = UInt8(ascii: "x") }
    #expect(throws: MedicalError.badMagic(path: path, magic: "x+1")) { try NIfTI.readImage(path) }
    path = try sampleFile("offset")
    try patch(path) {
      let bits = Float(100_000).bitPattern
      for b in 0..<4 { $0[108 + b] = UInt8((bits >> (8 * UInt32(b))) & 0xff) }
    }
    #expect(throws: MedicalError.badVoxelOffset(path: path, offset: 100_000, fileSize: 448)) {
      try NIfTI.readImage(path)
    }
    path = try sampleFile("truncated")
    try patch(path) { $0.removeLast(10) }
    #expect(throws: MedicalError.truncatedData(path: path, expectedBytes: 96, availableBytes: 86)) {
      try NIfTI.readImage(path)
    }
    path = try sampleFile("gzip", gzip: true)
    try patch(path) { $0.removeLast($0.count / 2) }
    #expect(throws: MedicalError.self) { try NIfTI.readImage(path) }
    do {
      _ = try NIfTI.readImage(path)
    } catch {
      #expect(error.description.hasPrefix(path + ": gzip error"))
    }
    #expect(throws: MedicalError.self) { try NIfTI.readImage(path + ".missing") }
    // A float volume with a fractional value is not a label map.
    let dir = temporaryDirectory("label")
    let fractional = Volume(
      geometry: Geometry(shape: [2, 1, 1], affine: .identity), voxels: [Float(1), 0.5])
    try NIfTI.write(fractional, to: dir + "/f.nii")
    #expect(throws: MedicalError.notALabelVolume(path: dir + "/f.nii", value: 0.5)) {
      try NIfTI.readLabels(dir + "/f.nii")
    }
    let message = MedicalError.badDimensionCount(path: "a.nii", value: 9).description
    #expect(message == "a.nii: dim[0] is 9, expected 1...7")
  }
}

@Suite("NIfTI qform")
struct QformTests {
  @Test("the qform computed from an affine reproduces it", arguments: testAffines)
  func quaternionRoundTrip(_ name: String, _ affine: Affine) {
    let geometry = Geometry(shape: [3, 3, 3], affine: affine)
    let back = Geometry.qformAffine(geometry.quaternion, spacing: geometry.spacing)
    for i in 0..<16 { #expect(abs(back.matrix[i] - affine.matrix[i]) < 1e-9, "\(name)") }
  }

  @Test(
    "canonical volumes are written with a qform and an sform that nibabel reads alike",
    .enabled(if: PeerPython.enabled(nibabelPython), PeerPython.missing("nibabel")))
  func nibabelQform() throws {
    let dir = temporaryDirectory("qform")
    var paths: [String] = []
    var geometries: [Geometry] = []
    for (name, affine) in testAffines {
      let volume = Volume(
        geometry: Geometry(shape: [4, 3, 2], affine: affine),
        voxels: [UInt8](repeating: 1, count: 24))
      for v in [volume, volume.canonical()] {
        let path = dir + "/\(name)-\(paths.count).nii.gz"
        try NIfTI.write(v, to: path)
        paths.append(path)
        geometries.append(v.geometry)
      }
    }
    let described = try #require(nibabelDescribe(paths, withData: false))
    for (d, g) in zip(described, geometries) {
      #expect(d.qform_code == 2 && d.sform_code == 2)
      let qform = try #require(d.qform)
      for r in 0..<3 {
        for k in 0..<4 {
          #expect(abs(qform[r][k] - g.affine[r, k]) < 1e-4)
          #expect(abs(d.affine[r][k] - g.affine[r, k]) < 1e-4)
        }
      }
    }
  }
}
