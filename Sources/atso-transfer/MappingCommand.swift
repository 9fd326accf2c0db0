import ArgumentParser
import Foundation
import Taxonomy

/// `atso-transfer mapping ...`: check, print and combine class sets and label mappings.
struct MappingCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "mapping",
    abstract: "Validate, check, show, compose and apply class sets and label mappings.",
    discussion: """
      Class sets (*.classes.json) and mappings (*.mapping.json) are JSON files (see \
      mappings/README.md). They come from your folders (--mappings DIR, repeatable, and \
      $\(MappingLibrary.environmentVariable)) and the shipped folder 'mappings/' (holding \
      README.md, found from the current directory or a parent, else from the executable's \
      directory).

      Examples:
        atso-transfer mapping validate
        atso-transfer mapping check --strict
        atso-transfer mapping show cityscapes-34--cityscapes-19
        atso-transfer mapping compose cityscapes-34--cityscapes-19 \\
          cityscapes-19--super-5 -o cityscapes-34--super-5.mapping.json
        atso-transfer mapping apply cityscapes-34:cityscapes-19 \\
          --input gtFine/val/frankfurt --output trainids
      """,
    subcommands: [Validate.self, Check.self, Show.self, Compose.self, Apply.self])
}

/// The `--mappings DIR` option of every command that reads class sets or mappings.
struct MappingsDirectoryOption: ParsableArguments {
  @Option(
    name: .customLong("mappings"),
    help: ArgumentHelp(
      "A folder of your own class sets and mappings, used beside the shipped ones (repeatable).",
      discussion: """
        Also $\(MappingLibrary.environmentVariable) (folders separated by ':'). Your folders \
        come before the shipped mappings/ (found from the current or the executable's folder); \
        a name defined differently in two files is an error naming both. A file path works \
        wherever a class set or mapping name does.
        """,
      valueName: "dir"))
  var directories: [String] = []

  /// The folders searched: these, the environment's, then the shipped folder.
  func searchPath() throws -> [String] {
    try MappingLibrary.searchPath(adding: directories)
  }

  /// The library of the search path, with the class set and mapping files among `references`
  /// (options that may name a file instead of a name) added.
  func library(including references: [String?] = []) throws -> MappingLibrary {
    let files = references.compactMap { $0 }.filter {
      $0.hasSuffix(".json") && FileManager.default.fileExists(atPath: $0)
    }
    return try MappingLibrary.load(adding: directories, files: files)
  }
}

extension MappingCommand {
  struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "validate",
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
      var folders: [String] = []
      if files.isEmpty {
        folders = try mappings.searchPath()
        for folder in folders {
          files += try FileManager.default.contentsOfDirectory(atPath: folder)
            .filter { $0.hasSuffix(".json") }.sorted().map { folder + "/" + $0 }
        }
      }
      let searchPath = (try? mappings.searchPath()) ?? []
      let (report, failures) = Self.validate(files, searchDirectories: searchPath)
      print(report, terminator: "")
      var failed = failures.count
      if !folders.isEmpty, failures.isEmpty {
        do {
          let library = try MappingLibrary(directories: folders)
          print(
            "ok     \(folders.joined(separator: ", ")): \(library.classSets.count) class sets, "
              + "\(library.mappings.count) mappings")
          let differing = library.pathComparisons().filter { !$0.differences.isEmpty }
          if !differing.isEmpty {
            print(
              "note   \(differing.count) mapping(s) differ from a chain of default mappings "
                + "between the same class sets: " + differing.map(\.direct.name).joined(
                  separator: ", ") + " (atso-transfer mapping check lists the classes)")
          }
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

  struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "check",
      abstract: "Compare every mapping with the chains of default mappings between its class sets.",
      discussion: """
        Evaluation maps ground truth to the predictions' class set first and then both sides \
        to the level through the same mappings (see `atso-transfer evaluate --help`), so a \
        direct mapping that disagrees with a chain (Mapillary -> Cityscapes categories against \
        Mapillary -> cityscapes-19 -> categories) gives another score. This lists every class \
        where they disagree; classes are compared where they count in a score (not evaluated \
        or ignored = ignore). Exit 0, or 1 with --strict when any mapping disagrees.

        Examples:
          atso-transfer mapping check
          atso-transfer mapping check --strict --mappings my-mappings
        """)

    @OptionGroup var mappings: MappingsDirectoryOption

    @Flag(help: "Exit 1 when a mapping disagrees with a chain.")
    var strict = false

    /// The report and whether any mapping disagrees.
    func report() throws -> (text: String, disagrees: Bool) {
      let library = try mappings.library()
      var lines: [String] = []
      var disagrees = false
      for comparison in library.pathComparisons() {
        let direct = comparison.direct
        let chain = comparison.path.map(\.name).joined(separator: " + ")
        let variant = direct.variant.map { " (variant \($0))" } ?? ""
        if comparison.differences.isEmpty {
          lines.append("agrees   \(direct.name)\(variant) = \(chain)")
          continue
        }
        disagrees = true
        lines.append(
          "differs  \(direct.name)\(variant) vs \(chain): \(comparison.differences.count) of "
            + "\(direct.source.classes.count) source classes")
        func name(_ id: Int?) -> String {
          id.flatMap { direct.target.semanticClass(id: $0)?.name } ?? "(ignore)"
        }
        for difference in comparison.differences {
          let source = direct.source.semanticClass(id: difference.sourceID)?.name ?? "?"
          lines.append(
            "           \(difference.sourceID) \(source): \(name(difference.direct)) (direct), "
              + "\(name(difference.composed)) (chain)")
        }
      }
      if lines.isEmpty { lines.append("no mapping has a chain of default mappings beside it") }
      return (lines.joined(separator: "\n") + "\n", disagrees)
    }

    func run() throws {
      let (text, disagrees) = try report()
      print(text, terminator: "")
      if strict && disagrees { throw ExitCode(1) }
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "show",
      abstract: "Print a class set or a mapping as a table.",
      discussion: """
        FILE is a path, or the name (or file stem) of a class set or mapping.

        Examples:
          atso-transfer mapping show cityscapes-19
          atso-transfer mapping show mappings/camvid-11--super-5.mapping.json
        """)

    @OptionGroup var mappings: MappingsDirectoryOption

    @Argument(help: "A class set or mapping file, or a name.")
    var file: String

    func text() throws -> String {
      switch try mappings.library(including: [file]).document(named: file) {
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
      commandName: "compose",
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
      let library = try mappings.library(including: [first, second])
      guard case .mapping(let a) = try library.document(named: first) else {
        throw ValidationError("'\(first)' is a class set, not a mapping")
      }
      guard case .mapping(let b) = try library.document(named: second) else {
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
