import Foundation
import Testing
@testable import Taxonomy

@Suite struct LocateDirectoryTests {
  /// root/pkg/mappings/README.md, root/pkg/a/b (a working directory), root/pkg/.build/debug/tool.
  func makeTree() throws -> (root: String, mappings: String) {
    let root = try makeTemporaryDirectory()
    let fileManager = FileManager.default
    for directory in ["pkg/mappings", "pkg/a/b", "pkg/.build/debug", "elsewhere"] {
      try fileManager.createDirectory(
        atPath: root + "/" + directory, withIntermediateDirectories: true)
    }
    try write("marker", to: root + "/pkg/mappings", named: "README.md")
    try write("", to: root + "/pkg/.build/debug", named: "tool")
    return (root, root + "/pkg/mappings")
  }

  @Test func searchOrder() throws {
    let (root, mappings) = try makeTree()
    // 1. explicit, even without marker; 2. environment.
    #expect(
      try MappingLibrary.locateDirectory(
        explicit: root + "/elsewhere", environment: [:], currentDirectory: "/",
        executablePath: nil) == root + "/elsewhere")
    #expect(
      try MappingLibrary.locateDirectory(
        explicit: nil, environment: ["ATSO_TRANSFER_MAPPINGS": root + "/elsewhere"],
        currentDirectory: root + "/pkg/a/b", executablePath: nil) == root + "/elsewhere")
    #expect(
      throws: TaxonomyError.unreadable(
        file: root + "/nope", reason: "not a directory (mappings directory)")
    ) {
      try MappingLibrary.locateDirectory(
        explicit: root + "/nope", environment: [:], currentDirectory: "/", executablePath: nil)
    }
    // 3. upward from the current directory.
    let fromCurrent = try MappingLibrary.locateDirectory(
      explicit: nil, environment: [:], currentDirectory: root + "/pkg/a/b", executablePath: nil)
    #expect(
      URL(fileURLWithPath: fromCurrent).standardizedFileURL.path
        == URL(fileURLWithPath: mappings).standardizedFileURL.path)
    // 4. upward from the executable's directory.
    let fromExecutable = try MappingLibrary.locateDirectory(
      explicit: nil, environment: [:], currentDirectory: root + "/elsewhere",
      executablePath: root + "/pkg/.build/debug/tool")
    #expect(
      URL(fileURLWithPath: fromExecutable).standardizedFileURL.path
        == URL(fileURLWithPath: mappings).standardizedFileURL.path)
  }

  @Test func notFoundListsTheSearchedPlaces() throws {
    let (root, _) = try makeTree()
    do {
      _ = try MappingLibrary.locateDirectory(
        explicit: nil, environment: [:], currentDirectory: root + "/elsewhere", executablePath: nil)
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
      _ = try MappingLibrary.locateDirectory(
        explicit: nil, environment: [:], currentDirectory: root + "/elsewhere",
        executablePath: root + "/elsewhere/tool")
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
    #expect(throws: TaxonomyError.unknownName("nope", directory: mappingsDirectory)) {
      try library.mapping(from: "nope", to: "super-5")
    }
  }
}
