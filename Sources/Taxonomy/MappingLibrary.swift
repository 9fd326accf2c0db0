import Foundation

/// All class sets and mappings of one directory (the shipped `mappings/`), with look-up by name
/// and path finding between class sets.
///
/// Files are recognised by name: `*.classes.json` are class sets (the file name must be the set's
/// name plus `.classes.json`), `*.mapping.json` are mappings. Other files are skipped.
public struct MappingLibrary: Sendable {
  /// The directory the files were loaded from.
  public let directory: String
  /// Class sets by name.
  public let classSets: [String: ClassSet]
  /// All mappings, sorted by name.
  public let mappings: [LabelMapping]

  /// Loads and validates every class set and mapping file in `directory`.
  /// - Throws: the first ``TaxonomyError`` met, or
  ///   ``TaxonomyError/duplicateDefinition(name:files:)`` /
  ///   ``TaxonomyError/ambiguousMapping(from:to:candidates:)`` for conflicting files.
  public init(directory: String) throws(TaxonomyError) {
    let names: [String]
    do {
      names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
    } catch {
      throw .unreadable(file: directory, reason: "cannot list the directory")
    }
    var classSets: [String: ClassSet] = [:]
    for fileName in names where fileName.hasSuffix(".classes.json") {
      let path = joinPath(directory, fileName)
      let classSet = try ClassSet(contentsOfFile: path)
      guard fileName == "\(classSet.name).classes.json" else {
        throw .invalidValue(
          file: path, entry: "name", value: "'\(classSet.name)'",
          reason: "the file must be named \(classSet.name).classes.json")
      }
      classSets[classSet.name] = classSet
    }
    var mappings: [LabelMapping] = []
    var files: [String: String] = [:]
    for fileName in names where fileName.hasSuffix(".mapping.json") {
      let path = joinPath(directory, fileName)
      let mapping = try LabelMapping(jsonText: readTextFile(path), file: path) { classSets[$0] }
      if let other = files[mapping.name] {
        throw .duplicateDefinition(name: mapping.name, files: [other, path])
      }
      files[mapping.name] = path
      mappings.append(mapping)
    }
    self.directory = directory
    self.classSets = classSets
    self.mappings = mappings.sorted { $0.name < $1.name }
    for mapping in self.mappings where mapping.isDefault {
      let rivals = self.mappings.filter {
        $0.isDefault && $0.source.name == mapping.source.name
          && $0.target.name == mapping.target.name
      }
      if rivals.count > 1 {
        throw .ambiguousMapping(
          from: mapping.source.name, to: mapping.target.name, candidates: rivals.map(\.name))
      }
    }
  }

  /// The class set called `name`.
  public func classSet(named name: String) throws(TaxonomyError) -> ClassSet {
    guard let classSet = classSets[name] else { throw .unknownName(name, directory: directory) }
    return classSet
  }

  /// The mapping called `name`.
  public func mapping(named name: String) throws(TaxonomyError) -> LabelMapping {
    guard let mapping = mappings.first(where: { $0.name == name }) else {
      throw .unknownName(name, directory: directory)
    }
    return mapping
  }

  /// The mapping from class set `source` to class set `target`.
  ///
  /// The identity when the names are equal; else the direct default mapping; else the
  /// composition of default mappings along a shortest path (breadth-first search, mappings in
  /// name order, so the result is deterministic). Non-default variants are reached only by
  /// ``mapping(named:)``.
  /// - Throws: ``TaxonomyError/noMapping(from:to:)`` when no path exists.
  public func mapping(from source: String, to target: String) throws(TaxonomyError)
    -> LabelMapping
  {
    let start = try classSet(named: source)
    if source == target { return .identity(start) }
    _ = try classSet(named: target)
    let defaults = mappings.filter(\.isDefault)
    var previous: [String: LabelMapping] = [:]
    var queue = [source]
    var visited: Set<String> = [source]
    while !queue.isEmpty, previous[target] == nil {
      let current = queue.removeFirst()
      for mapping in defaults where mapping.source.name == current {
        let next = mapping.target.name
        if visited.insert(next).inserted {
          previous[next] = mapping
          queue.append(next)
        }
      }
    }
    guard previous[target] != nil else { throw .noMapping(from: source, to: target) }
    var path: [LabelMapping] = []
    var node = target
    while node != source, let step = previous[node] {
      path.insert(step, at: 0)
      node = step.source.name
    }
    if path.count == 1 { return path[0] }
    var result = path[0]
    for step in path.dropFirst() { result = try result.composed(with: step) }
    return result
  }

  /// The marker file that identifies a `mappings/` directory.
  public static let markerFile = "README.md"
  /// The environment variable that names the mappings directory.
  public static let environmentVariable = "ATSO_TRANSFER_MAPPINGS"

  /// Finds the `mappings/` directory at run time.
  ///
  /// Order: `explicit` (the CLI's `--mappings DIR`); the environment variable
  /// `ATSO_TRANSFER_MAPPINGS`; a folder `mappings/` holding `README.md` in
  /// `currentDirectory` or any of its parents; the same search upward from the directory of
  /// `executablePath` (so that `.build/release/atso-transfer` finds the package's `mappings/`).
  /// An explicit or environment directory must exist, but needs no marker.
  /// - Throws: ``TaxonomyError/mappingsDirectoryNotFound(searched:)`` listing what was tried.
  public static func locateDirectory(
    explicit: String? = nil,
    environment: [String: String] = ProcessInfo.processInfo.environment,
    currentDirectory: String = FileManager.default.currentDirectoryPath,
    executablePath: String? = Bundle.main.executablePath
  ) throws(TaxonomyError) -> String {
    var searched: [String] = []
    for candidate in [explicit, environment[environmentVariable]].compactMap({ $0 }) {
      if isDirectory(candidate) { return candidate }
      throw .unreadable(file: candidate, reason: "not a directory (mappings directory)")
    }
    var starts = [currentDirectory]
    if let executablePath {
      let resolved = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().path
      starts.append(directoryName(of: resolved))
    }
    for start in starts {
      var directory = URL(fileURLWithPath: start).standardizedFileURL.path
      while true {
        let candidate = joinPath(directory, "mappings")
        if searched.contains(candidate) { break }  // the rest of this path was searched
        searched.append(candidate)
        if fileExists(joinPath(candidate, markerFile)) { return candidate }
        let parent = directoryName(of: directory)
        if parent == directory || parent.isEmpty { break }
        directory = parent
      }
    }
    throw .mappingsDirectoryNotFound(searched: searched)
  }
}

/// The directory part of `path`: `"a/b.json"` -> `"a"`, `"b.json"` -> `"."`, `"/a"` -> `"/"`.
func directoryName(of path: String) -> String {
  var trimmed = Substring(path)
  while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
  guard let slash = trimmed.lastIndex(of: "/") else { return "." }
  return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
}

func joinPath(_ directory: String, _ name: String) -> String {
  directory.hasSuffix("/") ? directory + name : directory + "/" + name
}

func fileExists(_ path: String) -> Bool {
  var isDirectory: ObjCBool = false
  return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
    && !isDirectory.boolValue
}

func isDirectory(_ path: String) -> Bool {
  var isDirectory: ObjCBool = false
  return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
    && isDirectory.boolValue
}
