import Foundation
import Testing
@testable import Taxonomy

/// The path as the library compares it.
private func canonical(_ path: String) -> String {
  URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
}

@Suite struct LocateDirectoryTests {
  /// root/pkg/mappings/README.md, root/pkg/a/b (a working directory), root/pkg/.build/debug/tool,
  /// root/elsewhere, root/mine, root/theirs (folders of one's own).
  func makeTree() throws -> (root: String, mappings: String) {
    let root = try makeTemporaryDirectory()
    let fileManager = FileManager.default
    for directory in ["pkg/mappings", "pkg/a/b", "pkg/.build/debug", "elsewhere", "mine", "theirs"]
    {
      try fileManager.createDirectory(
        atPath: root + "/" + directory, withIntermediateDirectories: true)
    }
    try write("marker", to: root + "/pkg/mappings", named: "README.md")
    try write("", to: root + "/pkg/.build/debug", named: "tool")
    return (root, root + "/pkg/mappings")
  }

  @Test func searchPathPutsYourFoldersBeforeTheShippedOne() throws {
    let (root, mappings) = try makeTree()
    // --mappings folders, then the environment's (':'-separated), then the shipped folder.
    let path = try MappingLibrary.searchPath(
      adding: [root + "/mine"],
      environment: ["ATSO_TRANSFER_MAPPINGS": root + "/theirs:" + root + "/mine"],
      currentDirectory: root + "/pkg/a/b", executablePath: nil)
    #expect(path.map(canonical) == [root + "/mine", root + "/theirs", mappings].map(canonical))
    // No folder of one's own: the shipped one alone.
    let shipped = try MappingLibrary.searchPath(
      environment: [:], currentDirectory: root + "/pkg/a/b", executablePath: nil)
    #expect(shipped.map(canonical) == [canonical(mappings)])
    // Your folders without a shipped folder in reach: only yours.
    let alone = try MappingLibrary.searchPath(
      adding: [root + "/elsewhere"], environment: [:], currentDirectory: root + "/elsewhere",
      executablePath: nil)
    #expect(alone == [root + "/elsewhere"])
    #expect(
      throws: TaxonomyError.unreadable(
        file: root + "/nope", reason: "not a directory (mappings folder)")
    ) {
      try MappingLibrary.searchPath(
        adding: [root + "/nope"], environment: [:], currentDirectory: "/", executablePath: nil)
    }
  }

  @Test func shippedFolderIsFoundUpwardFromTheWorkingDirectoryOrTheExecutable() throws {
    let (root, mappings) = try makeTree()
    let fromCurrent = try MappingLibrary.shippedDirectory(
      currentDirectory: root + "/pkg/a/b", executablePath: nil)
    #expect(canonical(fromCurrent) == canonical(mappings))
    let fromExecutable = try MappingLibrary.shippedDirectory(
      currentDirectory: root + "/elsewhere", executablePath: root + "/pkg/.build/debug/tool")
    #expect(canonical(fromExecutable) == canonical(mappings))
  }

  @Test func notFoundListsTheSearchedPlaces() throws {
    let (root, _) = try makeTree()
    do {
      _ = try MappingLibrary.searchPath(
        environment: [:], currentDirectory: root + "/elsewhere", executablePath: nil)
      Issue.record("found a mappings directory above \(root)/elsewhere")
    } catch {
      guard case .mappingsDirectoryNotFound(let searched) = error else {
        Issue.record("unexpected error \(error)")
        return
      }
      #expect(searched.first?.hasSuffix("/elsewhere/mappings") == true)
      #expect(searched.last == "/mappings")
    }
    // The executable beside the working directory: each place is listed once.
    do {
      _ = try MappingLibrary.shippedDirectory(
        currentDirectory: root + "/elsewhere", executablePath: root + "/elsewhere/tool")
    } catch {
      guard case .mappingsDirectoryNotFound(let searched) = error else {
        Issue.record("unexpected error \(error)")
        return
      }
      #expect(Set(searched).count == searched.count, "\(searched)")
      #expect(searched.last == "/mappings")
    }
  }

  @Test func libraryPathFindingAndNames() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let identity = try library.mapping(from: "cityscapes-19", to: "cityscapes-19")
    #expect(identity.targetIDs == Array(0..<19))
    // Two steps: 34 -> 19 -> categories.
    let categories = try library.mapping(from: "cityscapes-34", to: "cityscapes-categories")
    #expect(categories.targetID(ofSourceID: 7) == 0)  // road -> flat
    #expect(categories.targetID(ofSourceID: 9) == nil)  // parking: no trainId
    #expect(categories.targetID(ofSourceID: 33) == 6)  // bicycle -> vehicle
    #expect(throws: TaxonomyError.noMapping(from: "super-5", to: "cityscapes-19")) {
      try library.mapping(from: "super-5", to: "cityscapes-19")
    }
    do {
      _ = try library.mapping(from: "nope", to: "super-5")
      Issue.record("'nope' was found")
    } catch {
      guard case .unknownName(let name, let searched, let known) = error else {
        Issue.record("unexpected error \(error)")
        return
      }
      #expect(name == "nope" && searched == [mappingsDirectory] && known.contains("super-5"))
      #expect(error.description.contains("--mappings DIR"))
    }
    // File stems and paths work wherever names do.
    let narrow = try library.mapping(named: "cityscapes-19--super-5.narrow")
    #expect(narrow.name == "cityscapes-19-to-super-5.narrow")
    let byPath = try library.mapping(
      named: mappingsDirectory + "/cityscapes-19--super-5.narrow.mapping.json")
    #expect(byPath == narrow)
    let classesByPath = try library.classSet(named: mappingsDirectory + "/super-5.classes.json")
    #expect(classesByPath.name == "super-5")
  }
}

/// A folder of one's own beside the shipped `mappings/`: one class set and one mapping.
@Suite struct UserFolderTests {
  static let classSetText = """
    {"kind": "class-set", "version": 1, "name": "road-car-other", "ignoreIndex": 255,
     "classes": [{"id": 0, "name": "road"}, {"id": 1, "name": "car"}, {"id": 2, "name": "other"}]}
    """
  static let mappingText = """
    {"kind": "mapping", "version": 1, "name": "cityscapes-19-to-road-car-other",
     "from": "cityscapes-19", "to": "road-car-other",
     "entries": [{"to": "road", "from": ["road"]}, {"to": "car", "from": ["car"]}],
     "unlisted": "ignore"}
    """

  /// A folder holding the class set and the mapping.
  func userFolder() throws -> String {
    let directory = try makeTemporaryDirectory()
    try write(Self.classSetText, to: directory, named: "road-car-other.classes.json")
    try write(Self.mappingText, to: directory, named: "cityscapes-19--road-car-other.mapping.json")
    return directory
  }

  @Test func yourFolderAddsToTheShippedOne() throws {
    let mine = try userFolder()
    let library = try MappingLibrary(directories: [mine, mappingsDirectory])
    #expect(library.classSets["camvid-11"] != nil)  // shipped
    #expect(library.classSets["road-car-other"] != nil)  // yours
    #expect(library.classSetFiles["road-car-other"] == mine + "/road-car-other.classes.json")
    // Your mapping composes with the shipped ones: camvid-11 -> cityscapes-19 -> yours.
    let camvid = try library.mapping(from: "camvid-11", to: "road-car-other")
    #expect(camvid.targetID(ofSourceID: 3) == 0)  // Road
    #expect(camvid.targetID(ofSourceID: 8) == 1)  // Car
    #expect(camvid.targetID(ofSourceID: 0) == nil)  // Sky: not listed -> ignore
    // The same through the loader: folders given, then the shipped folder found.
    let loaded = try MappingLibrary.load(
      adding: [mine], environment: [:], currentDirectory: packageRoot, executablePath: nil)
    #expect(loaded.classSets.count == library.classSets.count)
    #expect(loaded.mappings.count == library.mappings.count)
  }

  @Test func aFileWorksWhereANameDoes() throws {
    let mine = try userFolder()
    let file = mine + "/cityscapes-19--road-car-other.mapping.json"
    let shipped = try MappingLibrary(directory: mappingsDirectory)
    // On the spot: the class set beside the file is found.
    let mapping = try shipped.mapping(named: file)
    #expect(mapping.target.name == "road-car-other")
    // Included: its class set is known by name afterwards (--mapping FILE --at road-car-other).
    let library = try shipped.including([file])
    #expect(try library.classSet(named: "road-car-other").classes.count == 3)
    #expect(try library.mapping(from: "cityscapes-34", to: "road-car-other").target.name
      == "road-car-other")
    #expect(try library.classSet(named: mine + "/road-car-other.classes.json").name
      == "road-car-other")
  }

  @Test func aNameDefinedTwiceIsAnErrorNamingBothFiles() throws {
    let mine = try userFolder()
    // Another cityscapes-19: class 0 reads "Street".
    let shippedText = try String(
      contentsOfFile: mappingsDirectory + "/cityscapes-19.classes.json", encoding: .utf8)
    let other = shippedText.replacingOccurrences(of: "\"readable\": \"Road\"", with: "\"readable\": \"Street\"")
    #expect(other != shippedText)
    try write(other, to: mine, named: "cityscapes-19.classes.json")
    #expect(
      throws: TaxonomyError.duplicateDefinition(
        name: "cityscapes-19",
        files: [mine + "/cityscapes-19.classes.json", mappingsDirectory + "/cityscapes-19.classes.json"])
    ) {
      try MappingLibrary(directories: [mine, mappingsDirectory])
    }
    // An identical copy (the old workaround of copying the shipped files) is no clash.
    try write(shippedText, to: mine, named: "cityscapes-19.classes.json")
    #expect(try MappingLibrary(directories: [mine, mappingsDirectory]).classSets.count
      == MappingLibrary(directory: mappingsDirectory).classSets.count + 1)
    // Two defaults for one pair in two folders: both named, with their files.
    let rival = Self.mappingText.replacingOccurrences(
      of: "cityscapes-19-to-road-car-other", with: "rival")
    let elsewhere = try makeTemporaryDirectory()
    try write(rival, to: elsewhere, named: "cityscapes-19--road-car-other.rival.mapping.json")
    do {
      _ = try MappingLibrary(directories: [mine, elsewhere, mappingsDirectory])
      Issue.record("two defaults accepted")
    } catch {
      guard case .ambiguousMapping(_, _, let candidates) = error else {
        Issue.record("unexpected error \(error)")
        return
      }
      #expect(candidates.count == 2)
      #expect(candidates.contains { $0.contains(elsewhere) })
      #expect(candidates.contains { $0.contains(mine) })
    }
  }
}
