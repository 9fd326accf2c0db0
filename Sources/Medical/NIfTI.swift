import Foundation
import Segmentation

/// The NIfTI-1 voxel types this module reads (`datatype` codes of `nifti1.h`).
public enum NIfTIDataType: Int, Sendable, Equatable, CaseIterable {
  case uint8 = 2, int16 = 4, int32 = 8, float32 = 16, float64 = 64, int8 = 256, uint16 = 512
  case uint32 = 768

  /// Bytes per voxel.
  public var size: Int {
    switch self {
    case .uint8, .int8: 1
    case .int16, .uint16: 2
    case .int32, .uint32, .float32: 4
    case .float64: 8
    }
  }
}

/// The parts of a NIfTI-1 header that this module uses.
public struct NIfTIHeader: Sendable, Equatable {
  /// The voxel type on disk.
  public var datatype: NIfTIDataType
  /// Whether the header and data are big-endian.
  public var isBigEndian: Bool
  /// `dim[0...7]` as stored.
  public var dimensions: [Int]
  /// Shape, spacing, affine and the qform/sform fields.
  public var geometry: Geometry
  /// `scl_slope`, or `nil` when it is 0 or not finite (no scaling, as nibabel does).
  public var scaleSlope: Double?
  /// `scl_inter` (0 when no scaling applies or it is not finite).
  public var scaleIntercept: Double
  /// Byte offset of the voxel data.
  public var voxelOffset: Int

  /// The byte just past the voxel data: `voxelOffset + voxels * bytes per voxel`.
  public var dataEnd: Int { voxelOffset + geometry.voxelCount * datatype.size }
}

/// NIfTI-1 single-file (`.nii`, `.nii.gz`) reading and writing.
///
/// Reading accepts little- and big-endian files, datatypes uint8, int8, int16, uint16, int32,
/// uint32, float32 and float64, applies `scl_slope`/`scl_inter` (slope 0 or NaN means none), and
/// builds the affine from the sform when `sform_code > 0`, otherwise the qform when
/// `qform_code > 0`, otherwise nibabel's fallback `diag(-dx, dy, dz)` centred on the volume.
/// gzip is detected from the file's first bytes. Writing produces little-endian `n+1` files with
/// `vox_offset = 352`, float32 images or uint8 labels, gzip when the path ends in `.gz`.
public enum NIfTI {
  static let headerSize = 348

  /// The largest file read from disk (compressed or not): 8 GiB.
  public static let maxFileBytes = 1 << 33
  /// The largest volume accepted, in voxels (2^29: 2 GiB as `Float`).
  public static let maxVoxels = 1 << 29

  /// Reads a file's bytes, inflating gzip; `headerOnly` stops after the header.
  ///
  /// A compressed file is inflated only as far as its header says the data goes
  /// (`vox_offset` + voxels x bytes per voxel), so a small file that inflates to gigabytes of
  /// trailing bytes costs no more than its volume; anything after the voxels is ignored, as
  /// nibabel does.
  static func loadBytes(_ path: String, headerOnly: Bool = false) throws(MedicalError) -> [UInt8] {
    switch FileRead.bytes(at: path, limit: maxFileBytes) {
    case .success(let bytes): return try inflated(bytes, path: path, headerOnly: headerOnly)
    case .failure(let failure): throw .unreadableFile(path: path, reason: failure.description)
    }
  }

  /// The bytes of a file as read from disk, inflated when they are gzip (see ``loadBytes``).
  static func inflated(_ bytes: [UInt8], path: String, headerOnly: Bool = false)
    throws(MedicalError) -> [UInt8]
  {
    guard GZip.isCompressed(bytes) else { return bytes }
    let header = try GZip.decompress(bytes, path: path, limit: 352)
    if headerOnly { return header }
    let fields = try parseHeader(header, path: path, checkData: false)
    return try GZip.decompress(bytes, path: path, limit: fields.dataEnd)
  }

  /// Reads and validates the header of `path`.
  ///
  /// - Throws: ``MedicalError`` naming the file and the offending field.
  public static func readHeader(_ path: String) throws(MedicalError) -> NIfTIHeader {
    try parseHeader(loadBytes(path), path: path)
  }

  /// Reads an image, converting every datatype to `Float` after scaling.
  ///
  /// - Throws: ``MedicalError`` for unreadable files and bad headers or data.
  public static func readImage(_ path: String) throws(MedicalError) -> Volume<Float> {
    try image(fromFile: loadBytes(path), path: path)
  }

  /// Decodes an image from the bytes of a `.nii` or `.nii.gz` file (as ``readImage(_:)`` does
  /// after reading it); `path` names the file in errors.
  ///
  /// - Throws: ``MedicalError`` for bad headers or data.
  public static func image(fromFile file: [UInt8], path: String) throws(MedicalError)
    -> Volume<Float>
  {
    let bytes = try inflated(file, path: path)
    let header = try parseHeader(bytes, path: path)
    let values = decode(bytes, header: header)
    if let bad = values.firstIndex(where: { !$0.isFinite }) {
      let shape = header.geometry.shape
      throw .nonFiniteVoxel(
        path: path, voxel: [bad % shape[0], bad / shape[0] % shape[1], bad / (shape[0] * shape[1])],
        value: "\(values[bad])")
    }
    return Volume(geometry: header.geometry, voxels: values)
  }

  /// Reads a label map: every voxel (after scaling) must be an integer in `0...255`, whatever the
  /// datatype (some label maps are stored as float32).
  ///
  /// - Throws: ``MedicalError/notALabelVolume(path:value:)`` for other values, and the errors of
  ///   ``readImage(_:)``.
  public static func readLabels(_ path: String) throws(MedicalError) -> Volume<UInt8> {
    let image = try readImage(path)
    var labels = [UInt8](repeating: 0, count: image.voxels.count)
    for (i, v) in image.voxels.enumerated() {
      guard v >= 0 && v <= 255 && v.rounded() == v else {
        throw .notALabelVolume(path: path, value: Double(v))
      }
      labels[i] = UInt8(v)
    }
    return Volume(geometry: image.geometry, voxels: labels)
  }

  /// Writes an image as float32 with the volume's geometry.
  ///
  /// - Throws: ``MedicalError/unreadableFile(path:reason:)`` when the file cannot be written.
  public static func write(_ volume: Volume<Float>, to path: String) throws(MedicalError) {
    var data = [UInt8](repeating: 0, count: volume.voxels.count * 4)
    for (i, v) in volume.voxels.enumerated() {
      let bits = v.bitPattern.littleEndian
      withUnsafeBytes(of: bits) { for b in 0..<4 { data[4 * i + b] = $0[b] } }
    }
    try write(data: data, datatype: .float32, geometry: volume.geometry, to: path)
  }

  /// Writes a label map as uint8 with the volume's geometry (e.g. a prediction on an image's grid:
  /// `Volume(geometry: image.geometry, voxels: predicted)`).
  ///
  /// - Throws: ``MedicalError/unreadableFile(path:reason:)`` when the file cannot be written.
  public static func write(_ volume: Volume<UInt8>, to path: String) throws(MedicalError) {
    try write(data: volume.voxels, datatype: .uint8, geometry: volume.geometry, to: path)
  }

  // MARK: - Header

  /// Parses and checks the header; with `checkData` also that the file holds every voxel.
  static func parseHeader(_ bytes: [UInt8], path: String, checkData: Bool = true)
    throws(MedicalError) -> NIfTIHeader
  {
    if bytes.count >= 4 {
      let first = ByteReader(bytes, bigEndian: false).int32(0)
      if first != 348 && first != Int32(348).byteSwapped {
        throw .badHeaderSize(path: path, value: Int(first))
      }
    }
    guard bytes.count >= headerSize else { throw .truncatedHeader(path: path, size: bytes.count) }
    let isBigEndian = ByteReader(bytes, bigEndian: false).int32(0) != 348
    let r = ByteReader(bytes, bigEndian: isBigEndian)
    let magic = bytes[344..<348]
    guard magic.elementsEqual([0x6e, 0x2b, 0x31, 0x00]) else {  // "n+1\0"
      let text = String(decoding: magic.prefix { $0 != 0 }, as: UTF8.self)
      throw .badMagic(path: path, magic: text)
    }
    let dims = (0..<8).map { Int(r.int16(40 + 2 * $0)) }
    guard (1...7).contains(dims[0]) else { throw .badDimensionCount(path: path, value: dims[0]) }
    let used = Array(dims[1...dims[0]])
    // Each dimension is at most 32767 (int16), so the product of three cannot overflow.
    guard used.allSatisfy({ $0 >= 1 }), used.dropFirst(3).allSatisfy({ $0 == 1 }),
      used.prefix(3).reduce(1, { $0 * $1 }) <= maxVoxels
    else { throw .badDimensions(path: path, dimensions: used) }
    let shape = (0..<3).map { $0 < used.count ? used[$0] : 1 }

    let code = Int(r.int16(70))
    guard let datatype = NIfTIDataType(rawValue: code) else {
      throw .unsupportedDatatype(path: path, code: code)
    }
    // bitpix is redundant with datatype; like nibabel, a wrong value is tolerated.
    let pixdim = (0..<8).map { Double(r.float32(76 + 4 * $0)) }
    let rawOffset = Double(r.float32(108))
    guard rawOffset.isFinite, rawOffset >= Double(headerSize), rawOffset <= Double(maxFileBytes)
    else { throw .badVoxelOffset(path: path, offset: rawOffset, fileSize: bytes.count) }
    let voxelOffset = Int(rawOffset)
    let needed = shape.reduce(1, *) * datatype.size
    if checkData {
      guard voxelOffset <= bytes.count else {
        throw .badVoxelOffset(path: path, offset: rawOffset, fileSize: bytes.count)
      }
      guard bytes.count - voxelOffset >= needed else {
        throw .truncatedData(
          path: path, expectedBytes: needed, availableBytes: bytes.count - voxelOffset)
      }
    }

    let slope = Double(r.float32(112))
    let intercept = Double(r.float32(116))
    let hasScaling = slope.isFinite && slope != 0
    // pixdim[1...dim[0]] must be usable spacings; axes past dim[0] (a 2-D file) get 1.
    var spacing: [Double] = []
    for i in 1...3 {
      let d = abs(pixdim[i])
      if i > dims[0] {
        spacing.append(d.isFinite && d > 0 ? d : 1)
        continue
      }
      guard d.isFinite, d > 0 else { throw .badSpacing(path: path, axis: i, value: pixdim[i]) }
      spacing.append(d)
    }
    let qformCode = Int(r.int16(252))
    let sformCode = Int(r.int16(254))
    let quaternion = Geometry.Quaternion(
      b: Double(r.float32(256)), c: Double(r.float32(260)), d: Double(r.float32(264)),
      offset: [Double(r.float32(268)), Double(r.float32(272)), Double(r.float32(276))],
      qfac: pixdim[0] < 0 ? -1 : 1)
    let affine: Affine
    if sformCode > 0 {
      affine = Affine(
        rows: (0..<3).map { row in (0..<4).map { Double(r.float32(280 + 16 * row + 4 * $0)) } })
    } else if qformCode > 0 {
      affine = Geometry.qformAffine(quaternion, spacing: spacing)
    } else {
      affine = Geometry.fallbackAffine(shape: shape, spacing: spacing)
    }
    let geometry = Geometry(
      shape: shape, spacing: spacing, affine: affine, qformCode: qformCode, sformCode: sformCode,
      quaternion: quaternion, units: bytes[123])
    return NIfTIHeader(
      datatype: datatype, isBigEndian: isBigEndian, dimensions: dims, geometry: geometry,
      scaleSlope: hasScaling ? slope : nil,
      scaleIntercept: hasScaling && intercept.isFinite ? intercept : 0, voxelOffset: voxelOffset)
  }

  // MARK: - Data

  /// Converts the voxel bytes to `Float` and applies the scaling.
  static func decode(_ bytes: [UInt8], header: NIfTIHeader) -> [Float] {
    let count = header.geometry.voxelCount
    var out = [Float](repeating: 0, count: count)
    let swap = header.isBigEndian != (UInt16(1).bigEndian == 1)
    let base = header.voxelOffset
    bytes.withUnsafeBytes { raw in
      func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
        let v = raw.loadUnaligned(fromByteOffset: base + i * MemoryLayout<T>.size, as: T.self)
        return swap ? v.byteSwapped : v
      }
      switch header.datatype {
      case .uint8: for i in 0..<count { out[i] = Float(raw[base + i]) }
      case .int8: for i in 0..<count { out[i] = Float(Int8(bitPattern: raw[base + i])) }
      case .int16: for i in 0..<count { out[i] = Float(load(Int16.self, i)) }
      case .uint16: for i in 0..<count { out[i] = Float(load(UInt16.self, i)) }
      case .int32: for i in 0..<count { out[i] = Float(load(Int32.self, i)) }
      case .uint32: for i in 0..<count { out[i] = Float(load(UInt32.self, i)) }
      case .float32: for i in 0..<count { out[i] = Float(bitPattern: load(UInt32.self, i)) }
      case .float64: for i in 0..<count { out[i] = Float(Double(bitPattern: load(UInt64.self, i))) }
      }
    }
    if let slope = header.scaleSlope {
      let s = slope
      let b = header.scaleIntercept
      for i in 0..<count { out[i] = Float(Double(out[i]) * s + b) }
    }
    return out
  }

  static func write(
    data: [UInt8], datatype: NIfTIDataType, geometry g: Geometry, to path: String
  ) throws(MedicalError) {
    var h = [UInt8](repeating: 0, count: 352)
    func put16(_ v: Int16, _ at: Int) {
      withUnsafeBytes(of: v.littleEndian) { for b in 0..<2 { h[at + b] = $0[b] } }
    }
    func put32(_ v: Int32, _ at: Int) {
      withUnsafeBytes(of: v.littleEndian) { for b in 0..<4 { h[at + b] = $0[b] } }
    }
    func putFloat(_ v: Double, _ at: Int) { put32(Int32(bitPattern: Float(v).bitPattern), at) }
    put32(348, 0)
    h[38] = UInt8(ascii: "r")
    let dims = [3] + g.shape + [1, 1, 1, 1]
    for (i, d) in dims.enumerated() { put16(Int16(clamping: d), 40 + 2 * i) }
    put16(Int16(datatype.rawValue), 70)
    put16(Int16(datatype.size * 8), 72)
    let pixdim = [g.quaternion.qfac < 0 ? -1 : 1] + g.spacing + [1, 1, 1, 1]
    for (i, p) in pixdim.enumerated() { putFloat(p, 76 + 4 * i) }
    putFloat(352, 108)
    putFloat(1, 112)  // scl_slope: identity scaling, stated explicitly
    putFloat(0, 116)
    h[123] = g.units
    let descrip = Array("atso-transfer Medical".utf8)
    for (i, c) in descrip.enumerated() { h[148 + i] = c }
    put16(Int16(clamping: g.qformCode), 252)
    put16(Int16(clamping: g.sformCode), 254)
    // The quaternion fields are written as read, even when qform_code is 0.
    let q = g.quaternion
    for (i, v) in [q.b, q.c, q.d, q.offset[0], q.offset[1], q.offset[2]].enumerated() {
      putFloat(v, 256 + 4 * i)
    }
    for row in 0..<3 {
      for c in 0..<4 { putFloat(g.affine[row, c], 280 + 16 * row + 4 * c) }
    }
    for (i, c) in Array("n+1".utf8).enumerated() { h[344 + i] = c }
    var file = h + data
    if path.hasSuffix(".gz") { file = try GZip.compress(file, path: path) }
    if let reason = FileWrite.atomically(file, to: path) {
      throw .unreadableFile(path: path, reason: reason)
    }
  }
}

/// Reads fixed-width fields of a header in a given byte order.
struct ByteReader {
  let bytes: [UInt8]
  let bigEndian: Bool

  init(_ bytes: [UInt8], bigEndian: Bool) {
    self.bytes = bytes
    self.bigEndian = bigEndian
  }

  func int16(_ offset: Int) -> Int16 {
    let v = UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
    return Int16(bitPattern: bigEndian ? v.byteSwapped : v)
  }

  func int32(_ offset: Int) -> Int32 {
    var v: UInt32 = 0
    for b in 0..<4 { v |= UInt32(bytes[offset + b]) << (8 * UInt32(b)) }
    return Int32(bitPattern: bigEndian ? v.byteSwapped : v)
  }

  func float32(_ offset: Int) -> Float { Float(bitPattern: UInt32(bitPattern: int32(offset))) }
}
