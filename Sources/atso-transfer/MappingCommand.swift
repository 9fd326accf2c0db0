import ArgumentParser
import Foundation
import Taxonomy

/// `atso-transfer mapping ...`: check, print and combine class sets and label mappings.
struct MappingCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mapping",
    abstract: "Validate, show, compose and apply class sets and label mappings.",
    discussion: """
      Class sets (*.classes.json) and mappings (*.mapping.json) are JSON files, see \
      mappings/README.md. The mappings directory is found from --mappings DIR, else \
      $\(MappingLibrary.environmentVariable), \
      else a folder 'mappings/' holding README.md in the current directory or a parent, else \
      the same search from the executable's directory.

      Examples:
        atso-transfer mapping validate
        atso-transfer mapping show cityscapes-34--cityscapes-19
        atso-transfer mapping compose cityscapes-34--cityscapes-19 \\
          cityscapes-19--super-5 -o cityscapes-34--super-5.mapping.json
        atso-transfer mapping apply cityscapes-34:cityscapes-19 \\
          --input gtFine/val/frankfurt --output trainids
      """,
    subcommands: [Validate.self, Show.self, Compose.self, Apply.self])
}

/// The `--mappings DIR` option shared by the subcommands.
struct MappingsDirectoryOption: ParsableArguments {
  @Option(
    name: .customLong("mappings"),
    help: ArgumentHelp(
      "The mappings directory.", discussion: "Default: $ATSO_TRANSFER_MAPPINGS, else searched.",
      valueName: "dir"))
  var directory: String?

  /// The located mappings directory.
  func locate() throws -> String {
    try MappingLibrary.locateDirectory(explicit: directory)
  }

  /// The located directory as a search path, or no directory when none can be found and none
  /// was asked for.
  func searchDirectories() throws -> [String] {
    do {
      return [try locate()]
    } catch TaxonomyError.mappingsDirectoryNotFound {
      return []
    }
  }

  /// Loads `fileOrName`: a file path; else a file name without `.mapping.json` or
  /// `.classes.json` in the mappings directory; else the name of a class set or mapping there.
  func document(_ fileOrName: String) throws -> TaxonomyDocument {
    if FileManager.default.fileExists(atPath: fileOrName) {
      return try TaxonomyDocument(
        contentsOfFile: fileOrName, searchDirectories: searchDirectories())
    }
    let directory = try locate()
    for suffix in [".mapping.json", ".classes.json"]
    where FileManager.default.fileExists(atPath: directory + "/" + fileOrName + suffix) {
      return try TaxonomyDocument(
        contentsOfFile: directory + "/" + fileOrName + suffix, searchDirectories: [directory])
    }
    let library = try MappingLibrary(directory: directory)
    if let classSet = library.classSets[fileOrName] { return .classSet(classSet) }
    return .mapping(try library.mapping(named: fileOrName))
  }
}

extension MappingCommand {
  struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Validate class set and mapping files; exit 1 if any is invalid.",
      discussion: """
        Without files, validates every *.json file of the mappings directory and then the \
        directory as a library (names unique, every mapping's class sets present).

        Examples:
          atso-transfer mapping validate
          atso-transfer mapping validate my-data.classes.json \\
            my-data--cityscapes-19.mapping.json --mappings mappings
        """)

    @OptionGroup var mappings: MappingsDirectoryOption

    @Argument(help: "Class set (*.classes.json) or mapping (*.mapping.json) files.")
    var files: [String] = []

    /// One line per file (`ok` or `error`), and the files that failed.
    static func validate(_ files: [String], searchDirectories: [String]) -> (
      report: String, failures: [String]
    ) {
      var lines: [String] = []
      var failures: [String] = []
      for file in files {
        do {
          switch try TaxonomyDocument(contentsOfFile: file, searchDirectories: searchDirectories) {
          case .classSet(let classSet):
            lines.append(
              "ok     \(file): class set '\(classSet.name)', \(classSet.classes.count) classes, "
                + "ignore \(classSet.ignoreIndex)")
          case .mapping(let mapping):
            let mapped = mapping.targetIDs.compactMap { $0 }.count
            lines.append(
              "ok     \(file): mapping '\(mapping.name)', \(mapping.source.name) -> "
                + "\(mapping.target.name), \(mapped) of \(mapping.source.classes.count) "
                + "source classes mapped")
          }
        } catch {
          lines.append("error  \(error)")
          failures.append(file)
        }
      }
      return (lines.joined(separator: "\n") + "\n", failures)
    }

    func run() throws {
      var files = self.files
      var directory: String?
      if files.isEmpty {
        let located = try mappings.locate()
        directory = located
        files = try FileManager.default.contentsOfDirectory(atPath: located)
          .filter { $0.hasSuffix(".json") }.sorted().map { located + "/" + $0 }
      }
      let (report, failures) = Self.validate(
        files, searchDirectories: try mappings.searchDirectories())
      print(report, terminator: "")
      var failed = failures.count
      if let directory, failures.isEmpty {
        do {
          let library = try MappingLibrary(directory: directory)
          print(
            "ok     \(directory): \(library.classSets.count) class sets, "
              + "\(library.mappings.count) mappings")
        } catch {
          print("error  \(error)")
          failed += 1
        }
      }
      if failed > 0 {
        FileHandle.standardError.write(Data("\(failed) invalid file(s)\n".utf8))
        throw ExitCode(1)
      }
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Print a class set or a mapping as a table.",
      discussion: """
        FILE is a path, or the name of a class set or mapping in the mappings directory.

        Examples:
          atso-transfer mapping show cityscapes-19
          atso-transfer mapping show mappings/camvid-11--super-5.mapping.json
        """)

    @OptionGroup var mappings: MappingsDirectoryOption

    @Argument(help: "A class set or mapping file, or a name.")
    var file: String

    func text() throws -> String {
      switch try mappings.document(file) {
      case .classSet(let classSet): classSet.table()
      case .mapping(let mapping): mapping.table()
      }
    }

    func run() throws {
      print(try text(), terminator: "")
    }
  }

  struct Compose: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Compose two mappings (A: X -> Y, then B: Y -> Z) into one file (X -> Z).",
      discussion: """
        A and B are paths or mapping names. The result names classes by name.

        Example:
          atso-transfer mapping compose cityscapes-34--cityscapes-19 \\
            cityscapes-19--super-5 -o cityscapes-34--super-5.mapping.json
        """)

    @OptionGroup var mappings: MappingsDirectoryOption

    @Argument(help: "The first mapping (X -> Y).")
    var first: String

    @Argument(help: "The second mapping (Y -> Z).")
    var second: String

    @Option(name: .shortAndLong, help: "The mapping file to write.")
    var output: String

    @Option(help: "The name of the composed mapping (default: X-to-Z).")
    var name: String?

    func composed() throws -> LabelMapping {
      guard case .mapping(let a) = try mappings.document(first) else {
        throw ValidationError("'\(first)' is a class set, not a mapping")
      }
      guard case .mapping(let b) = try mappings.document(second) else {
        throw ValidationError("'\(second)' is a class set, not a mapping")
      }
      return try a.composed(with: b, name: name)
    }

    func run() throws {
      let mapping = try composed()
      do {
        try mapping.jsonText().write(toFile: output, atomically: true, encoding: .utf8)
      } catch {
        throw TaxonomyError.unwritable(file: output, reason: "\(error.localizedDescription)")
      }
      let mapped = mapping.targetIDs.compactMap { $0 }.count
      print(
        "wrote \(output): mapping '\(mapping.name)', \(mapping.source.name) -> "
          + "\(mapping.target.name), \(mapped) of \(mapping.source.classes.count) source classes "
          + "mapped"
      )
    }
  }
}
