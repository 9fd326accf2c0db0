import Foundation

/// The class sets and mappings of one or more folders (your own folders, then the shipped
/// `mappings/`) and single files, with look-up by name or path and path finding between class
/// sets.
///
/// Files are recognised by name in a folder: `*.classes.json` are class sets (the file name must
/// be the set's name plus `.classes.json`), `*.mapping.json` are mappings; other files are
/// skipped. Single files given by path may have any name (their `kind` key tells them apart).
/// A mapping may name class sets of any folder. **Names are global:** two files that define the
/// same class set or mapping name differently are an error naming both files (the same
/// definition twice, e.g. a copy of a shipped file beside your own, is not).
public struct MappingLibrary: Sendable {
  /// The folders the files were loaded from, in search order (user folders first, the shipped
  /// folder last).
  public private(set) var directories: [String]
  /// Class sets by name.
  public private(set) var classSets: [String: ClassSet] = [:]
  /// All mappings, sorted by name.
  public private(set) var mappings: [LabelMapping] = []
  /// The file each class set was loaded from, by class set name.
  public private(set) var classSetFiles: [String: String] = [:]
  /// The file each mapping was loaded from, by mapping name.
  public private(set) var mappingFiles: [String: String] = [:]

  /// Loads and validates every class set and mapping file in `directory`.
  /// - Throws: see ``init(directories:files:)``.
  public init(directory: String) throws(TaxonomyError) {
    try self.init(directories: [directory])
  }

  /// Loads and validates every class set and mapping file of `directories` and the single
  /// `files` (class sets or mappings given by path).
  ///
  /// A mapping file given by path finds the class sets it names in the folders, else beside it.
  /// - Throws: the first ``TaxonomyError`` met,
  ///   ``TaxonomyError/duplicateDefinition(name:files:)`` for a name defined differently in two
  ///   files, ``TaxonomyError/ambiguousMapping(from:to:candidates:)`` for two default mappings
  ///   between the same class sets.
  public init(directories: [String], files: [String] = []) throws(TaxonomyError) {
    var seen: Set<String> = []
    self.directories = directories.filter { seen.insert(standardizedPath($0)).inserted }
    var mappingPaths: [String] = []
    for directory in self.directories {
      let names: [String]
      do {
        names = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
      } catch {
        throw .unreadable(file: directory, reason: "cannot list the folder (mappings folder)")
      }
      for name in names where name.hasSuffix(".classes.json") {
        let path = joinPath(directory, name)
        let classSet = try ClassSet(contentsOfFile: path)
        guard name == "\(classSet.name).classes.json" else {
          throw .invalidValue(
            file: path, entry: "name", value: "'\(classSet.name)'",
            reason: "the file must be named \(classSet.name).classes.json")
        }
        try add(classSet, file: path)
      }
      mappingPaths += names.filter { $0.hasSuffix(".mapping.json") }.map { joinPath(directory, $0) }
    }
    var singleMappings: [String] = []
    for file in files {
      switch try Self.kind(ofFile: file) {
      case "class-set": try add(ClassSet(contentsOfFile: file), file: file)
      default: singleMappings.append(file)
      }
    }
    for path in mappingPaths { try add(loadMapping(path, besideFile: false), file: path) }
    for path in singleMappings { try add(loadMapping(path, besideFile: true), file: path) }
    mappings.sort { $0.name < $1.name }
    try checkDefaults()
  }

  /// The folders a library is loaded from: `folders` (the CLI's `--mappings DIR`, in order),
  /// then the folders of `ATSO_TRANSFER_MAPPINGS` (separated by `:`), then the shipped folder
  /// (``shippedDirectory(currentDirectory:executablePath:)``). Repeated folders are listed once.
  ///
  /// - Throws: ``TaxonomyError/unreadable(file:reason:)`` for a given folder that does not exist;
  ///   ``TaxonomyError/mappingsDirectoryNotFound(searched:)`` when no folder is given and the
  ///   shipped one is not found. (With a folder of your own and no shipped folder found, only
  ///   your folders are used.)
  public static func searchPath(
    adding folders: [String] = [],
    environment: [String: String] = ProcessInfo.processInfo.environment,
    currentDirectory: String = FileManager.default.currentDirectoryPath,
    executablePath: String? = Bundle.main.executablePath
  ) throws(TaxonomyError) -> [String] {
    let given = folders + Self.folders(inList: environment[environmentVariable])
    for folder in given where !isDirectory(folder) {
      throw .unreadable(file: folder, reason: "not a directory (mappings folder)")
    }
    var result = given
    do {
      result.append(
        try shippedDirectory(currentDirectory: currentDirectory, executablePath: executablePath))
    } catch {
      if given.isEmpty { throw error }
    }
    var seen: Set<String> = []
    return result.filter { seen.insert(standardizedPath($0)).inserted }
  }

  /// The library of ``searchPath(adding:environment:currentDirectory:executablePath:)`` plus
  /// the single `files`.
  public static func load(
    adding folders: [String] = [], files: [String] = [],
    environment: [String: String] = ProcessInfo.processInfo.environment,
    currentDirectory: String = FileManager.default.currentDirectoryPath,
    executablePath: String? = Bundle.main.executablePath
  ) throws(TaxonomyError) -> MappingLibrary {
    try MappingLibrary(
      directories: searchPath(
        adding: folders, environment: environment, currentDirectory: currentDirectory,
        executablePath: executablePath),
      files: files)
  }

  /// The folders of a `:`-separated list (the environment variable, the backends' `mappings`
  /// option); `nil` or empty gives none.
  public static func folders(inList list: String?) -> [String] {
    (list ?? "").split(separator: ":").map(String.init).filter { !$0.isEmpty }
  }

  /// The library with the single files `files` added (see ``init(directories:files:)``).
  public func including(_ files: [String]) throws(TaxonomyError) -> MappingLibrary {
    var library = self
    var singleMappings: [String] = []
    for file in files where !library.isLoaded(file) {
      switch try Self.kind(ofFile: file) {
      case "class-set": try library.add(ClassSet(contentsOfFile: file), file: file)
      default: singleMappings.append(file)
      }
    }
    for path in singleMappings {
      try library.add(library.loadMapping(path, besideFile: true), file: path)
    }
    library.mappings.sort { $0.name < $1.name }
    try library.checkDefaults()
    return library
  }

  // MARK: Look-up

  /// The class set `reference`: a class set name, or the path of a `*.classes.json` file.
  ///
  /// A file that is not part of the library is loaded on the spot; its name must not clash.
  /// - Throws: ``TaxonomyError/unknownName(_:searched:known:)`` listing the folders and the known
  ///   class sets.
  public func classSet(named reference: String) throws(TaxonomyError) -> ClassSet {
    if let classSet = classSets[reference] { return classSet }
    if fileExists(reference) {
      if let name = classSetFiles.first(where: { samePath($0.value, reference) })?.key,
        let classSet = classSets[name]
      {
        return classSet
      }
      let classSet = try ClassSet(contentsOfFile: reference)
      if let known = classSets[classSet.name], known != classSet {
        throw .duplicateDefinition(
          name: classSet.name, files: [classSetFiles[classSet.name] ?? "?", reference])
      }
      return classSet
    }
    throw .unknownName(
      reference, searched: directories,
      known: classSets.keys.sorted())
  }

  /// The mapping `reference`: a mapping name (`cityscapes-19-to-super-5`), a file stem in a
  /// folder (`cityscapes-19--super-5.narrow`), or the path of a `*.mapping.json` file.
  ///
  /// A file that is not part of the library is loaded on the spot (its class sets come from the
  /// library, else from beside it); its name must not clash.
  /// - Throws: ``TaxonomyError/unknownName(_:searched:known:)`` listing the folders and the known
  ///   mappings.
  public func mapping(named reference: String) throws(TaxonomyError) -> LabelMapping {
    if let mapping = mappings.first(where: { $0.name == reference }) { return mapping }
    if let name = mappingFiles.first(where: { fileStem($0.value) == reference })?.key,
      let mapping = mappings.first(where: { $0.name == name })
    {
      return mapping
    }
    if fileExists(reference) {
      if let name = mappingFiles.first(where: { samePath($0.value, reference) })?.key,
        let mapping = mappings.first(where: { $0.name == name })
      {
        return mapping
      }
      let mapping = try loadMapping(reference, besideFile: true)
      if let known = mappings.first(where: { $0.name == mapping.name }), known != mapping {
        throw .duplicateDefinition(
          name: mapping.name, files: [mappingFiles[mapping.name] ?? "?", reference])
      }
      return mapping
    }
    throw .unknownName(
      reference, searched: directories,
      known: mappings.map(\.name))
  }

  /// A class set or a mapping by name, file stem or path (class sets first).
  public func document(named reference: String) throws(TaxonomyError) -> TaxonomyDocument {
    if classSets[reference] != nil || reference.hasSuffix(".classes.json") {
      return .classSet(try classSet(named: reference))
    }
    if fileExists(reference), try Self.kind(ofFile: reference) == "class-set" {
      return .classSet(try classSet(named: reference))
    }
    do {
      return .mapping(try mapping(named: reference))
    } catch .unknownName {
      throw .unknownName(
        reference, searched: directories,
        known: classSets.keys.sorted() + mappings.map(\.name))
    }
  }

  /// Every mapping between the same two class sets as `mapping` (its variants, itself
  /// included): the default first, then by name.
  public func variants(of mapping: LabelMapping) -> [LabelMapping] {
    mappings.filter {
      $0.source.name == mapping.source.name && $0.target.name == mapping.target.name
    }.sorted { ($0.isDefault ? 0 : 1, $0.name) < ($1.isDefault ? 0 : 1, $1.name) }
  }

  /// A mapping as a record of results names it: `'name' (variant A)`, followed by the other
  /// variants between the same class sets when there are any (they give other scores).
  public func recordName(of mapping: LabelMapping) -> String {
    var text = "'\(mapping.name)'" + (mapping.variant.map { " (variant \($0))" } ?? "")
    let others = variants(of: mapping).filter { $0.name != mapping.name }
    if !others.isEmpty {
      text += ", one of \(others.count + 1) variants (the others: "
        + others.map { "'\($0.name)'" + ($0.variant.map { " (\($0))" } ?? "") }
          .joined(separator: ", ")
        + "; `evaluate --variants` scores under each)"
    }
    return text
  }

  /// The mapping from class set `source` to class set `target` (names or class set files).
  ///
  /// The identity when they are equal; else the direct default mapping; else the composition
  /// of default mappings along a shortest path (breadth-first search, mappings in name order,
  /// so the result is deterministic), in which a class that is not evaluated at an
  /// intermediate class set (a void class) maps to ignore. Non-default variants are reached
  /// only by ``mapping(named:)``. This is the ground-truth step of every evaluation
  /// (``ScoringPath/groundTruthSteps`` when the ground truth maps to the predictions' class
  /// set) and the label mapping of training.
  /// - Throws: ``TaxonomyError/noMapping(from:to:)`` when no path exists.
  public func mapping(from source: String, to target: String) throws(TaxonomyError)
    -> LabelMapping
  {
    let start = try classSet(named: source)
    let end = try classSet(named: target)
    guard let steps = path(from: start.name, to: end.name, over: scoringEdges([])) else {
      throw .noMapping(from: start.name, to: end.name)
    }
    return ScoringPath.composition(steps, from: start)
  }

  // MARK: Paths

  /// A shortest chain of `edges` from class set `source` to class set `target` (empty when
  /// they are equal), breadth-first in the order of `edges`; `nil` when there is none.
  func path(from source: String, to target: String, over edges: [LabelMapping])
    -> [LabelMapping]?
  {
    if source == target { return [] }
    var previous: [String: LabelMapping] = [:]
    var queue = [source]
    var visited: Set<String> = [source]
    while !queue.isEmpty, previous[target] == nil {
      let current = queue.removeFirst()
      for mapping in edges where mapping.source.name == current {
        let next = mapping.target.name
        if visited.insert(next).inserted {
          previous[next] = mapping
          queue.append(next)
        }
      }
    }
    guard previous[target] != nil else { return nil }
    var steps: [LabelMapping] = []
    var node = target
    while node != source, let step = previous[node] {
      steps.insert(step, at: 0)
      node = step.source.name
    }
    return steps
  }

  /// The class sets reachable from `source` over `edges`, with their distance (`source`: 0).
  func distances(from source: String, over edges: [LabelMapping]) -> [String: Int] {
    var distance = [source: 0]
    var queue = [source]
    while !queue.isEmpty {
      let current = queue.removeFirst()
      for mapping in edges where mapping.source.name == current {
        if distance[mapping.target.name] == nil {
          distance[mapping.target.name] = (distance[current] ?? 0) + 1
          queue.append(mapping.target.name)
        }
      }
    }
    return distance
  }

  // MARK: Finding the shipped folder

  /// The marker file that identifies the shipped `mappings/` folder.
  public static let markerFile = "README.md"
  /// The environment variable that adds folders of your own (separated by `:`).
  public static let environmentVariable = "ATSO_TRANSFER_MAPPINGS"

  /// Finds the shipped `mappings/` folder: a folder `mappings/` holding `README.md` in
  /// `currentDirectory` or any of its parents, else the same search upward from the directory
  /// of `executablePath` (so that `.build/release/atso-transfer` finds the package's
  /// `mappings/`).
  /// - Throws: ``TaxonomyError/mappingsDirectoryNotFound(searched:)`` listing what was tried.
  public static func shippedDirectory(
    currentDirectory: String = FileManager.default.currentDirectoryPath,
    executablePath: String? = Bundle.main.executablePath
  ) throws(TaxonomyError) -> String {
    var searched: [String] = []
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

  // MARK: Loading

  /// The `kind` key of a taxonomy file.
  static func kind(ofFile path: String) throws(TaxonomyError) -> String {
    let reader = JSONReader(file: path)
    let root = try reader.object(reader.parse(readTextFile(path)), at: "(root)")
    let kind = try reader.string(reader.required("kind", in: root, at: "(root)"), at: "kind")
    guard kind == "class-set" || kind == "mapping" else {
      throw .invalidValue(
        file: path, entry: "kind", value: "'\(kind)'", reason: "expected 'class-set' or 'mapping'")
    }
    return kind
  }

  func isLoaded(_ file: String) -> Bool {
    classSetFiles.values.contains { samePath($0, file) }
      || mappingFiles.values.contains { samePath($0, file) }
  }

  /// Parses a mapping file with the library's class sets (and, for a single file, those beside
  /// it when the library has none of that name).
  func loadMapping(_ path: String, besideFile: Bool) throws(TaxonomyError) -> LabelMapping {
    let directory = directoryName(of: path)
    return try LabelMapping(jsonText: readTextFile(path), file: path) {
      name throws(TaxonomyError) -> ClassSet? in
      if let known = classSets[name] { return known }
      let beside = joinPath(directory, "\(name).classes.json")
      return besideFile && fileExists(beside) ? try ClassSet(contentsOfFile: beside) : nil
    }
  }

  mutating func add(_ classSet: ClassSet, file: String) throws(TaxonomyError) {
    if let known = classSets[classSet.name] {
      guard known == classSet else {
        throw .duplicateDefinition(
          name: classSet.name, files: [classSetFiles[classSet.name] ?? "?", file])
      }
      return
    }
    classSets[classSet.name] = classSet
    classSetFiles[classSet.name] = file
  }

  mutating func add(_ mapping: LabelMapping, file: String) throws(TaxonomyError) {
    // A single file's class sets found beside it join the library.
    for classSet in [mapping.source, mapping.target] where classSets[classSet.name] == nil {
      try add(classSet, file: joinPath(directoryName(of: file), "\(classSet.name).classes.json"))
    }
    if let known = mappings.first(where: { $0.name == mapping.name }) {
      guard known == mapping else {
        throw .duplicateDefinition(
          name: mapping.name, files: [mappingFiles[mapping.name] ?? "?", file])
      }
      return
    }
    mappings.append(mapping)
    mappingFiles[mapping.name] = file
  }

  func checkDefaults() throws(TaxonomyError) {
    for mapping in mappings where mapping.isDefault {
      let rivals = mappings.filter {
        $0.isDefault && $0.source.name == mapping.source.name
          && $0.target.name == mapping.target.name
      }
      if rivals.count > 1 {
        throw .ambiguousMapping(
          from: mapping.source.name, to: mapping.target.name,
          candidates: rivals.map { "\($0.name) (\(mappingFiles[$0.name] ?? "?"))" })
      }
    }
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

/// The file name without its directory and without `.mapping.json` / `.classes.json`.
func fileStem(_ path: String) -> String {
  var name = String(path.split(separator: "/").last ?? Substring(path))
  for suffix in [".mapping.json", ".classes.json"] where name.hasSuffix(suffix) {
    name.removeLast(suffix.count)
  }
  return name
}

func standardizedPath(_ path: String) -> String {
  URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
}

func samePath(_ a: String, _ b: String) -> Bool {
  a == b || standardizedPath(a) == standardizedPath(b)
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
