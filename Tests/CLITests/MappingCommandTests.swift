import ArgumentParser
import Foundation
import Taxonomy
import Testing
@testable import atso_transfer

/// The package's shipped mappings directory (Tests/CLITests/ -> package root).
private let shippedMappings: String = {
  var url = URL(fileURLWithPath: #filePath)
  for _ in 0..<3 { url.deleteLastPathComponent() }
  return url.path + "/mappings"
}()

private func temporaryDirectory() throws -> String {
  let path = NSTemporaryDirectory() + "cli-mapping-tests-" + UUID().uuidString
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

@Suite struct MappingCommandTests {
  @Test func parsesValidate() throws {
    let command = try AtsoTransfer.parseAsRoot([
      "mapping", "validate", "a.json", "b.json", "--mappings", "/some/dir",
    ])
    let validate = try #require(command as? MappingCommand.Validate)
    #expect(validate.files == ["a.json", "b.json"])
    #expect(validate.mappings.directories == ["/some/dir"])
  }

  @Test func validateAcceptsEveryShippedFile() throws {
    var command = try AtsoTransfer.parseAsRoot([
      "mapping", "validate", "--mappings", shippedMappings,
    ])
    try command.run()
    let files = try FileManager.default.contentsOfDirectory(atPath: shippedMappings)
      .filter { $0.hasSuffix(".json") }.map { shippedMappings + "/" + $0 }
    let (report, failures) = MappingCommand.Validate.validate(files, searchDirectories: [])
    #expect(failures.isEmpty)
    #expect(report.split(separator: "\n").count == files.count)
  }

  @Test func validateListsEveryBadFileAndFails() throws {
    let directory = try temporaryDirectory()
    let bad = directory + "/bad.classes.json"
    try
      #"{"kind": "class-set", "version": 1, "name": "bad", "classes": [{"id": 0, "name": "u"}, {"id": 0, "name": "v"}]}"#
      .write(toFile: bad, atomically: true, encoding: .utf8)
    let broken = directory + "/broken.mapping.json"
    try "{\"kind\": \"mapping\",\n  \"version\": 1,,\n}".write(
      toFile: broken, atomically: true, encoding: .utf8)
    let good = shippedMappings + "/super-5.classes.json"
    let (report, failures) = MappingCommand.Validate.validate(
      [bad, good, broken], searchDirectories: [])
    #expect(failures == [bad, broken])
    let lines = report.split(separator: "\n").map(String.init)
    #expect(
      lines[0] == "error  \(TaxonomyError.duplicateID(file: bad, entry: "classes[1].id", value: 0))"
    )
    #expect(lines[1].hasPrefix("ok     \(good)"))
    #expect(lines[2].hasPrefix("error  \(broken):2:16: malformed JSON"))
    var command = try AtsoTransfer.parseAsRoot(["mapping", "validate", bad, good, broken])
    #expect(throws: ExitCode(1)) { try command.run() }
  }

  @Test func showPrintsTables() throws {
    let byFile = try #require(
      try AtsoTransfer.parseAsRoot([
        "mapping", "show", shippedMappings + "/cityscapes-19--super-5.mapping.json",
      ]) as? MappingCommand.Show)
    let text = try byFile.text()
    #expect(text.contains("variant S2, default"))
    #expect(
      text.contains(
        "1       vehicle     13 car, 14 truck, 15 bus, 16 train, 17 motorcycle, 18 bicycle"))
    let byName = try #require(
      try AtsoTransfer.parseAsRoot([
        "mapping", "show", "cityscapes-34", "--mappings", shippedMappings,
      ])
        as? MappingCommand.Show)
    let table = try byName.text()
    #expect(table.contains("class set cityscapes-34: 34 classes, ignore value 255"))
    #expect(
      table.contains("9   parking               Parking               250,170,160  no    flat"))
  }

  @Test func composeWritesTheComposedMapping() throws {
    let directory = try temporaryDirectory()
    let output = directory + "/mapillary-to-super.mapping.json"
    var command = try AtsoTransfer.parseAsRoot([
      "mapping", "compose", "mapillary-vistas-v1.2-to-cityscapes-19",
      shippedMappings + "/cityscapes-19--super-5.mapping.json", "--output", output,
      "--mappings", shippedMappings, "--name", "m66-to-s5",
    ])
    try command.run()
    let written = try LabelMapping(contentsOfFile: output, searchDirectories: [shippedMappings])
    let library = try MappingLibrary(directory: shippedMappings)
    let direct = try library.mapping(from: "mapillary-vistas-v1.2", to: "super-5")
    #expect(written.name == "m66-to-s5")
    #expect(written.lookupTable == direct.lookupTable)
    #expect(written.targetIDs == direct.targetIDs)
  }

  @Test func composeRejectsMismatchedMappings() throws {
    let command = try #require(
      try AtsoTransfer.parseAsRoot([
        "mapping", "compose", "cityscapes-19-to-super-5", "cityscapes-19-to-super-5",
        "-o", "/dev/null", "--mappings", shippedMappings,
      ]) as? MappingCommand.Compose)
    #expect(
      throws: TaxonomyError.classSetMismatch(
        expected: "super-5", found: "cityscapes-19",
        context: "composing 'cityscapes-19-to-super-5' with 'cityscapes-19-to-super-5'")
    ) { try command.composed() }
  }
}
