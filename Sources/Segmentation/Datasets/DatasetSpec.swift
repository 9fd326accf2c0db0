/// A dataset named on a command line or in a run configuration, as one string.
///
/// ```
/// cityscapes:ROOT[:SPLIT]          leftImg8bit/ + gtFine/ labelIds (class set cityscapes-34);
///                                  SPLIT defaults to train
/// cityscapes-trainids:ROOT[:SPLIT] the same with *_gtFine_labelTrainIds.png (cityscapes-19)
/// mapillary:ROOT[:SPLIT]           images/ + v1.2/labels/ palette PNGs (mapillary-vistas-v1.2)
/// camvid:LIST                      a SegNet CamVid list file such as train.txt (camvid-11)
/// list:LIST:CLASSSET               a generic list of `image [label]` lines, labels in CLASSSET
/// ```
/// Any of them may end in `?include=P1,P2` and/or `&exclude=P3` (or `?exclude=...`): keep only the
/// samples whose id starts with one of the include prefixes, and drop those starting with an
/// exclude prefix. CamVid's day and dusk sequences are split this way:
/// `camvid:train.txt?include=0006R0,0016E5` (day) and `camvid:train.txt?include=0001TP` (dusk).
/// `?unlabeled` keeps the images only (label paths are dropped), for an unlabeled target set.
public struct DatasetSpec: Sendable, Equatable, Hashable, Codable, CustomStringConvertible {
  /// The layout.
  public enum Kind: String, Sendable, Codable, CaseIterable {
    case cityscapes
    case cityscapesTrainIds = "cityscapes-trainids"
    case mapillary
    case camvid
    case list
  }

  public var kind: Kind
  public var path: String
  /// The split folder (Cityscapes, Mapillary) or the class set name (`list`).
  public var argument: String?
  public var includePrefixes: [String]
  public var excludePrefixes: [String]
  /// Drop the labels (the unlabeled reference set of a transfer).
  public var unlabeled: Bool

  /// The spec as it was written (round-trips through ``init(parsing:)``).
  public var description: String {
    var text = "\(kind.rawValue):\(path)"
    if let argument { text += ":\(argument)" }
    var query: [String] = []
    if !includePrefixes.isEmpty { query.append("include=" + includePrefixes.joined(separator: ",")) }
    if !excludePrefixes.isEmpty { query.append("exclude=" + excludePrefixes.joined(separator: ",")) }
    if unlabeled { query.append("unlabeled") }
    if !query.isEmpty { text += "?" + query.joined(separator: "&") }
    return text
  }

  /// Parses a spec string.
  ///
  /// - Throws: ``DatasetError/invalidSpec(_:reason:)`` naming the string and what is wrong.
  public init(parsing text: String) throws(DatasetError) {
    var body = Substring(text)
    var query: Substring = ""
    if let q = text.firstIndex(of: "?") {
      body = text[..<q]
      query = text[text.index(after: q)...]
    }
    guard let colon = body.firstIndex(of: ":") else {
      throw .invalidSpec(text, reason: "expected KIND:PATH, e.g. camvid:data/train.txt")
    }
    let kindName = String(body[..<colon])
    guard let kind = Kind(rawValue: kindName) else {
      let kinds = Kind.allCases.map(\.rawValue).joined(separator: ", ")
      throw .invalidSpec(text, reason: "unknown dataset kind '\(kindName)' (known: \(kinds))")
    }
    var rest = String(body[body.index(after: colon)...])
    var argument: String?
    // The last ':' separates a split or class set; a path may not contain ':' then.
    if kind != .camvid, let last = rest.lastIndex(of: ":") {
      argument = String(rest[rest.index(after: last)...])
      rest = String(rest[..<last])
    }
    guard !rest.isEmpty else { throw .invalidSpec(text, reason: "the path is empty") }
    if kind == .list, argument?.isEmpty ?? true {
      throw .invalidSpec(text, reason: "a list needs its class set: list:FILE:CLASSSET")
    }
    var include: [String] = []
    var exclude: [String] = []
    var unlabeled = false
    for item in query.split(separator: "&") where !item.isEmpty {
      // Empty pieces are kept: "=" is an option without a name, "include=" one without values.
      let pair = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        .map(String.init)
      func prefixes() throws(DatasetError) -> [String] {
        let values = pair[1].split(separator: ",").map(String.init)
        guard !values.isEmpty else {
          throw .invalidSpec(text, reason: "\(pair[0])= needs at least one id prefix")
        }
        return values
      }
      switch pair[0] {
      case "include" where pair.count == 2:
        include = try prefixes()
      case "exclude" where pair.count == 2:
        exclude = try prefixes()
      case "unlabeled" where pair.count == 1:
        unlabeled = true
      default:
        throw .invalidSpec(
          text, reason: "unknown option '\(item)' (known: include=..., exclude=..., unlabeled)")
      }
    }
    self.kind = kind
    self.path = rest
    self.argument = argument
    self.includePrefixes = include
    self.excludePrefixes = exclude
    self.unlabeled = unlabeled
  }

  public init(from decoder: any Decoder) throws {
    let text = try decoder.singleValueContainer().decode(String.self)
    do {
      self = try DatasetSpec(parsing: text)
    } catch {
      throw DecodingError.dataCorrupted(
        .init(codingPath: decoder.codingPath, debugDescription: error.description))
    }
  }

  public func encode(to encoder: any Encoder) throws {
    var container = encoder.singleValueContainer()
    try container.encode(description)
  }

  /// Lists the samples (paths are checked; images are not decoded).
  ///
  /// - Throws: the reader's `DatasetError`, or ``DatasetError/empty(path:)`` when the filters
  ///   leave nothing.
  public func open() throws(DatasetError) -> Dataset {
    var dataset: Dataset
    switch kind {
    case .cityscapes:
      dataset = try .cityscapes(
        root: path, split: argument ?? "train", labels: unlabeled ? nil : .labelIds)
    case .cityscapesTrainIds:
      dataset = try .cityscapes(
        root: path, split: argument ?? "train", labels: unlabeled ? nil : .trainIds)
    case .mapillary:
      dataset = try .mapillaryVistas(root: path, split: argument, requireLabels: !unlabeled)
    case .camvid:
      dataset = try .camVid(listFile: path)
    case .list:
      dataset = try .list(file: path, classSetName: argument ?? "")
    }
    dataset.samples = dataset.samples.filter { sample in
      (includePrefixes.isEmpty || includePrefixes.contains { sample.id.hasPrefix($0) })
        && !excludePrefixes.contains { sample.id.hasPrefix($0) }
    }
    if unlabeled {
      for i in dataset.samples.indices { dataset.samples[i].labelPath = nil }
    }
    guard !dataset.samples.isEmpty else { throw .empty(path: description) }
    return dataset
  }
}
