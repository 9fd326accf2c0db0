/// A 4×4 affine transform from voxel indices `(i, j, k)` to world millimetres, stored row-major.
///
/// The world frame is RAS+ as in NIfTI and nibabel: x grows to the patient's Right, y to the
/// Anterior, z to the Superior. Only the first three rows are meaningful; the last is `0 0 0 1`.
public struct Affine: Sendable, Equatable, CustomStringConvertible {
  /// The 16 entries, row-major: `matrix[4 * row + column]`.
  public var matrix: [Double]

  /// Creates an affine from 16 row-major entries.
  ///
  /// - Precondition: `matrix.count == 16`.
  public init(matrix: [Double]) {
    precondition(matrix.count == 16, "an affine has 16 entries, got \(matrix.count)")
    self.matrix = matrix
  }

  /// Creates an affine from its first three rows (`[[a, b, c, t], ...]`).
  public init(rows: [[Double]]) {
    precondition(rows.count == 3 && rows.allSatisfy { $0.count == 4 }, "need 3 rows of 4")
    self.init(matrix: rows.flatMap { $0 } + [0, 0, 0, 1])
  }

  /// The identity transform.
  public static let identity = Affine(matrix: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1])

  /// The entry at `row`, `column`.
  public subscript(row: Int, column: Int) -> Double {
    get { matrix[4 * row + column] }
    set { matrix[4 * row + column] = newValue }
  }

  /// The product `self * other` (apply `other` first).
  public func multiplied(by other: Affine) -> Affine {
    var out = [Double](repeating: 0, count: 16)
    for r in 0..<4 {
      for c in 0..<4 {
        var s = 0.0
        for k in 0..<4 { s += self[r, k] * other[k, c] }
        out[4 * r + c] = s
      }
    }
    return Affine(matrix: out)
  }

  /// The world position of a voxel index (fractional indices allowed).
  public func apply(to index: [Double]) -> [Double] {
    precondition(index.count == 3, "a voxel index has 3 coordinates")
    return (0..<3).map { r in
      self[r, 0] * index[0] + self[r, 1] * index[1] + self[r, 2] * index[2] + self[r, 3]
    }
  }

  /// The length of each of the first three columns: the voxel spacing implied by the affine.
  public var columnNorms: [Double] {
    (0..<3).map { c in (0..<3).map { self[$0, c] * self[$0, c] }.reduce(0, +).squareRoot() }
  }

  /// For each storage axis, the world axis (0 = x/LR, 1 = y/AP, 2 = z/SI) it runs along and
  /// whether it runs towards the positive (R, A, S) end.
  ///
  /// Like nibabel's `io_orientation`, but the closest orthogonal matrix is found greedily:
  /// columns are normalised, then the largest remaining `|entry|` assigns its storage axis to its
  /// world axis, and that row and column are removed. For the usual (near-)orthogonal affines this
  /// gives nibabel's answer; for 45° obliquity the tie is broken towards the lower storage axis.
  public var orientation: [(worldAxis: Int, isPositive: Bool)] {
    let norms = columnNorms
    var m = [[Double]](repeating: [0, 0, 0], count: 3)  // m[row][column], normalised columns
    for r in 0..<3 {
      for c in 0..<3 { m[r][c] = norms[c] > 0 ? self[r, c] / norms[c] : 0 }
    }
    var result = [(worldAxis: Int, isPositive: Bool)](repeating: (0, true), count: 3)
    var rowFree = [true, true, true]
    var columnFree = [true, true, true]
    for _ in 0..<3 {
      var best = (row: -1, column: -1, value: -1.0)
      for c in 0..<3 where columnFree[c] {
        for r in 0..<3 where rowFree[r] && abs(m[r][c]) > best.value {
          best = (r, c, abs(m[r][c]))
        }
      }
      rowFree[best.row] = false
      columnFree[best.column] = false
      result[best.column] = (best.row, m[best.row][best.column] >= 0)
    }
    return result
  }

  /// The direction each storage axis increases towards, like nibabel's `aff2axcodes`:
  /// `[.right, .anterior, .superior]` for a RAS volume, `[.left, .posterior, .superior]` for LPS.
  public var axisCodes: [AnatomicalDirection] {
    orientation.map { AnatomicalDirection(worldAxis: $0.worldAxis, isPositive: $0.isPositive) }
  }

  public var description: String {
    (0..<3).map { r in (0..<4).map { String(self[r, $0]) }.joined(separator: " ") }
      .joined(separator: "; ")
  }
}

/// The anatomical direction a storage axis increases towards.
public enum AnatomicalDirection: String, Sendable, Equatable, CaseIterable {
  case right = "R", left = "L", anterior = "A", posterior = "P", superior = "S", inferior = "I"

  /// The direction along world axis `worldAxis` (0 = L/R, 1 = P/A, 2 = I/S).
  public init(worldAxis: Int, isPositive: Bool) {
    switch (worldAxis, isPositive) {
    case (0, true): self = .right
    case (0, false): self = .left
    case (1, true): self = .anterior
    case (1, false): self = .posterior
    case (2, true): self = .superior
    default: self = .inferior
    }
  }
}

extension Array where Element == AnatomicalDirection {
  /// The codes as a string, e.g. `"RAS"` or `"LPS"`.
  public var code: String { map(\.rawValue).joined() }
}

/// How a volume's voxels sit in space: its shape, spacing, affine and the NIfTI fields needed to
/// write it back with the same geometry.
public struct Geometry: Sendable, Equatable {
  /// Voxels along each storage axis `(x, y, z)`; x varies fastest in memory.
  public var shape: [Int]
  /// Voxel size in millimetres along each storage axis (`pixdim[1...3]`, absolute values).
  public var spacing: [Double]
  /// Voxel index to RAS+ world millimetres (from the sform, the qform, or the nibabel fallback).
  public var affine: Affine
  /// The NIfTI `qform_code` (0 when no quaternion is stored).
  public var qformCode: Int
  /// The NIfTI `sform_code` (0 when no `srow` matrix is stored).
  public var sformCode: Int
  /// The stored qform quaternion `(b, c, d)`, offset and `qfac`, written back unchanged.
  public var quaternion: Quaternion
  /// The NIfTI `xyzt_units` byte (2 = millimetres).
  public var units: UInt8

  /// The qform parameters as stored in a NIfTI-1 header.
  public struct Quaternion: Sendable, Equatable {
    public var b: Double, c: Double, d: Double
    public var offset: [Double]
    /// `pixdim[0]`: -1 flips the third axis, otherwise 1.
    public var qfac: Double
    public init(b: Double, c: Double, d: Double, offset: [Double], qfac: Double) {
      self.b = b
      self.c = c
      self.d = d
      self.offset = offset
      self.qfac = qfac
    }
  }

  /// Creates a geometry from an affine alone (the spacing is the affine's column norms); it is
  /// written with `sform_code = qform_code = 2` (aligned), the qform being the affine's rotation
  /// (exact for affines without shear).
  public init(shape: [Int], affine: Affine) {
    precondition(shape.count == 3, "a volume has 3 dimensions, got \(shape)")
    self.shape = shape
    self.affine = affine
    self.spacing = affine.columnNorms.map { $0 > 0 ? $0 : 1 }
    self.qformCode = 2
    self.sformCode = 2
    self.quaternion = Geometry.quaternion(of: affine)
    self.units = 2
  }

  /// Creates a geometry with every field given.
  public init(
    shape: [Int], spacing: [Double], affine: Affine, qformCode: Int, sformCode: Int,
    quaternion: Quaternion, units: UInt8
  ) {
    precondition(shape.count == 3 && spacing.count == 3, "a volume has 3 dimensions")
    self.shape = shape
    self.spacing = spacing
    self.affine = affine
    self.qformCode = qformCode
    self.sformCode = sformCode
    self.quaternion = quaternion
    self.units = units
  }

  /// The number of voxels.
  public var voxelCount: Int { shape.reduce(1, *) }

  /// The storage axis codes (see ``Affine/axisCodes``).
  public var axisCodes: [AnatomicalDirection] { affine.axisCodes }

  /// The same geometry with a new affine and shape, as for a reoriented or resampled volume:
  /// the qform is dropped and the affine is written as an sform (keeping a positive code).
  func derived(shape: [Int], affine: Affine) -> Geometry {
    var g = Geometry(shape: shape, affine: affine)
    g.sformCode = sformCode > 0 ? sformCode : (qformCode > 0 ? qformCode : 2)
    g.qformCode = g.sformCode
    g.units = units
    return g
  }

  /// The qform parameters of an affine: NIfTI's `nifti_mat44_to_quatern`.
  ///
  /// Columns are normalised (a zero column becomes the matching unit axis); a negative
  /// determinant gives `qfac = -1` and flips the third column. Shear is not represented.
  static func quaternion(of affine: Affine) -> Quaternion {
    var r = [[Double]](repeating: [0, 0, 0], count: 3)  // r[row][column]
    let norms = affine.columnNorms
    for c in 0..<3 {
      for row in 0..<3 {
        r[row][c] = norms[c] > 0 ? affine[row, c] / norms[c] : (row == c ? 1 : 0)
      }
    }
    let determinant =
      r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1])
      - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
      + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0])
    var qfac = 1.0
    if determinant < 0 {
      qfac = -1
      for row in 0..<3 { r[row][2] = -r[row][2] }
    }
    var a = r[0][0] + r[1][1] + r[2][2] + 1
    var b: Double
    var c: Double
    var d: Double
    if a > 0.5 {
      a = 0.5 * a.squareRoot()
      b = 0.25 * (r[2][1] - r[1][2]) / a
      c = 0.25 * (r[0][2] - r[2][0]) / a
      d = 0.25 * (r[1][0] - r[0][1]) / a
    } else {
      let xd = 1 + r[0][0] - (r[1][1] + r[2][2])
      let yd = 1 + r[1][1] - (r[0][0] + r[2][2])
      let zd = 1 + r[2][2] - (r[0][0] + r[1][1])
      if xd > 1 {
        b = 0.5 * xd.squareRoot()
        c = 0.25 * (r[0][1] + r[1][0]) / b
        d = 0.25 * (r[0][2] + r[2][0]) / b
        a = 0.25 * (r[2][1] - r[1][2]) / b
      } else if yd > 1 {
        c = 0.5 * yd.squareRoot()
        b = 0.25 * (r[0][1] + r[1][0]) / c
        d = 0.25 * (r[1][2] + r[2][1]) / c
        a = 0.25 * (r[0][2] - r[2][0]) / c
      } else {
        d = 0.5 * zd.squareRoot()
        b = 0.25 * (r[0][2] + r[2][0]) / d
        c = 0.25 * (r[1][2] + r[2][1]) / d
        a = 0.25 * (r[1][0] - r[0][1]) / d
      }
      if a < 0 {
        b = -b
        c = -c
        d = -d
      }
    }
    return Quaternion(
      b: b, c: c, d: d, offset: [affine[0, 3], affine[1, 3], affine[2, 3]], qfac: qfac)
  }

  /// The rotation matrix of a unit quaternion `(a, b, c, d)` with `a = sqrt(1 - b² - c² - d²)`,
  /// times `diag(spacing) * diag(1, 1, qfac)`, plus the offset: NIfTI's "method 2".
  static func qformAffine(_ q: Quaternion, spacing: [Double]) -> Affine {
    let (b, c, d) = (q.b, q.c, q.d)
    var a2 = 1 - (b * b + c * c + d * d)
    if a2 < 0 { a2 = 0 }  // nibabel's tolerance: tiny negative values become 0
    let a = a2.squareRoot()
    let r: [[Double]] = [
      [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)],
      [2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)],
      [2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ]
    let scale = [spacing[0], spacing[1], spacing[2] * (q.qfac < 0 ? -1 : 1)]
    return Affine(rows: (0..<3).map { i in (0..<3).map { r[i][$0] * scale[$0] } + [q.offset[i]] })
  }

  /// nibabel's fallback when neither code is set: `diag(-dx, dy, dz)` centred on the volume.
  static func fallbackAffine(shape: [Int], spacing: [Double]) -> Affine {
    let zooms = [-spacing[0], spacing[1], spacing[2]]
    var rows = [[Double]](repeating: [0, 0, 0, 0], count: 3)
    for i in 0..<3 {
      rows[i][i] = zooms[i]
      rows[i][3] = -Double(shape[i] - 1) / 2 * zooms[i]
    }
    return Affine(rows: rows)
  }
}
