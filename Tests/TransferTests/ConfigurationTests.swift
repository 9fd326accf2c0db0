import Foundation
import Segmentation
import TestSupport
import Testing
@testable import Transfer

func decodeConfiguration(_ json: String) throws -> TransferConfiguration {
  let configuration = try TransferConfiguration.decode(
    Data(json.utf8), file: "run.json", kinds: [TestOptions.self, SimulationOptions.self])
  return try configuration.validated(file: "run.json").configuration
}

@Test("a minimal configuration gets the defaults; a full one round-trips through JSON")
func configurationRoundTrip() throws {
  let minimal = try decodeConfiguration(#"{"schedules": ["atso"], "generations": 2}"#)
  #expect(minimal.schedules == [.atso])
  #expect(minimal.folds == 2 && minimal.generations == 2 && minimal.seed == 0)
  #expect(minimal.stages == TransferConfiguration.defaultStages)
  let full = try decodeConfiguration(
    #"""
    {"seed": 18446744073709551615, "schedules": ["self-learning", "stso", "atso"], "folds": 3,
     "generations": 4, "runDirectory": "runs/a",
     "pseudoLabels": {"classBalancedPortion": 0.2, "adaptBatchNorm": true, "ignoreIndex": 250},
     "stages": [
       {"name": "coarse", "method": "schedules", "level": "super:cityscapes-7"},
       {"name": "target", "method": "train", "level": "super:cityscapes-7", "network": "deeplab",
        "labels": "previous-stage-final"},
       {"name": "fine", "method": "train", "level": "fine", "initialization": "previous-stage",
        "labels": "relabel"}],
     "backend": {"kind": "test", "source": "gta5", "size": 64}, "sourceModel": "/m/source.ckpt"}
    """#)
  #expect(full.seed == UInt64.max)
  #expect(full.stages[0].level == .superClass(mapping: "cityscapes-7"))
  #expect(full.stages[2].initialization == .previousStage)
  #expect(full.pseudoLabels.classBalancedPortion == 0.2 && full.pseudoLabels.ignoreIndex == 250)
  let options = try #require(full.backend as? TestOptions)
  #expect(options.source == "gta5" && options.size == 64 && options.sourceSteps == 10)
  #expect(full.sourceModel == "/m/source.ckpt")
  let directory = try makeTemporaryDirectory("config")
  try full.save(to: directory + "/run.json")
  let loaded = try TransferConfiguration.load(from: directory + "/run.json", kinds: [TestOptions.self])
  #expect(loaded.configuration == full)
  #expect(loaded.configuration.backend as? TestOptions == options)
  // The saved file holds the backend's resolved options, numbers as numbers.
  let saved = try String(contentsOfFile: directory + "/run.json", encoding: .utf8)
  #expect(saved.contains(#""sourceSteps" : 10"#), "\(saved)")
  #expect(saved.contains(#""kind" : "test""#))
}

@Test(
  "invalid configurations are refused with the file, the key and the value",
  arguments: [
    (
      #"{"schedules": ["atso", "mean-teacher"]}"#,
      TransferError.unknownSchedule("mean-teacher", file: "run.json")
    ),
    (
      #"{"folds": 1}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "folds", reason: "ATSO needs K >= 2 folds, got 1")
    ),
    (
      #"{"generations": 0}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "generations", reason: "must be at least 1, got 0")
    ),
    (
      #"{"generation": 3}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "generation",
        reason: "unknown key (expected one of seed, runDirectory, schedules, folds, generations, "
          + "pseudoLabels, stages, backend, sourceModel, previews)")
    ),
    (
      #"{"schedules": []}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "schedules", reason: "at least one schedule is needed")
    ),
    (
      #"{"pseudoLabels": {"confidenceThreshold": 1.5}}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "pseudoLabels.confidenceThreshold",
        reason: "must be in [0, 1], got 1.5")
    ),
    (
      #"{"pseudoLabels": {"confidenceThreshold": 0.9, "classBalancedPortion": 0.5}}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "pseudoLabels",
        reason: "confidenceThreshold and classBalancedPortion are mutually exclusive")
    ),
    (
      #"{"stages": [{"name": "a", "method": "schedules", "level": "coarse"}]}"#,
      TransferError.unknownLabelLevel("coarse", file: "run.json")
    ),
    (
      #"{"folds": "two"}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "folds", reason: "expected an integer (a JSON number)")
    ),
    (
      #"{"stages": [{"name": "a", "method": "train", "labels": "relabel"}]}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "stages[0].method",
        reason: "the first stage must be a schedules stage")
    ),
    (
      #"{"stages": [{"name": "a b", "method": "schedules"}]}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "stages[0].name",
        reason: "'a b' must be non-empty letters, digits, - or _")
    ),
    (
      #"{"stages": [{"name": "a", "method": "schedules"}, {"name": "b", "method": "train"}]}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "stages[1].labels",
        reason: "a train stage needs 'previous-stage-final' or 'relabel'")
    ),
    (
      #"{"stages": [{"name": "a", "method": "schedules", "level": "super:m"}, "#
        + #"{"name": "b", "method": "train", "labels": "previous-stage-final"}]}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "stages[1].level",
        reason: "'previous-stage-final' reuses labels at level super:m, but this stage is at fine")
    ),
    (
      #"{"stages": [{"name": "a", "method": "schedules", "initialization": "previous-stage"}]}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "stages[0].initialization",
        reason: "the first stage has no previous stage; it starts from the source model M0")
    ),
    (
      #"{"stages": [{"name": "a", "method": "schedules", "colour": 1}]}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "stages[0].colour",
        reason: "unknown key (expected one of name, method, level, initialization, network, labels, "
          + "generations)")
    ),
    (
      #"{"pseudoLabels": {"ignoreIndex": 256}}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "pseudoLabels.ignoreIndex", reason: "must be in 0...255, got 256")
    ),
    (
      #"{"backend": {"kind": "test", "source": "x", "sise": 3}}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "backend.sise",
        reason: "unknown key of the test backend (expected one of kind, source, reference, test, "
          + "size, sourceSteps, studentSteps, threads)")
    ),
    (
      #"{"backend": {"kind": "test", "source": "x", "size": 0}}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "backend.size", reason: "must be at least 1, got 0")
    ),
    (
      #"{"backend": {"kind": "test", "source": "x", "size": 1.5}}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "backend.size", reason: "expected an integer (a JSON number)")
    ),
    (
      #"{"backend": {"kind": "test"}}"#,
      TransferError.invalidConfiguration(file: "run.json", key: "backend.source", reason: "missing")
    ),
    (
      #"{"backend": {"kind": "tset", "data": "x"}}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "backend.kind",
        reason: "unknown backend kind 'tset' (expected test, simulation)")
    ),
  ])
func invalidConfiguration(json: String, expected: TransferError) {
  #expect(throws: expected) { try decodeConfiguration(json) }
}

@Test("malformed JSON and missing files are reported with the file name")
func malformedConfiguration() throws {
  #expect(throws: TransferError.malformedConfiguration(file: "run.json", reason: "not valid JSON"))
  {
    try decodeConfiguration("{")
  }
  #expect(
    throws: TransferError.fileOperation(
      path: "/nonexistent/run.json", reason: "cannot read the configuration")
  ) {
    try TransferConfiguration.load(from: "/nonexistent/run.json", kinds: [])
  }
  #expect(
    TransferError.unknownSchedule("x", file: "run.json").description
      == "run.json: unknown schedule 'x' (expected self-learning, stso or atso)")
}

@Test("backend objects of the earlier shape are refused with the object to write instead")
func outdatedBackendObjects() throws {
  do {
    _ = try decodeConfiguration(
      #"{"backend": {"kind": "test", "source": "x", "source-steps": "40", "size": "8"}}"#)
    Issue.record("an outdated backend object was accepted")
  } catch let error as TransferError {
    guard case .outdatedConfiguration(let file, let key, let changes, let replacement) = error
    else {
      Issue.record("unexpected \(error)")
      return
    }
    #expect(file == "run.json" && key == "backend")
    #expect(changes == [#""size": "8" -> 8"#, #""source-steps" -> "sourceSteps""#, #""sourceSteps": "40" -> 40"#])
    // The replacement decodes to what was meant.
    let fixed = try decodeConfiguration(#"{"backend": \#(replacement)}"#)
    #expect(fixed.backend as? TestOptions == {
      var options = TestOptions(source: "x")
      options.size = 8
      options.sourceSteps = 40
      return options
    }())
    #expect(error.description.hasPrefix("run.json: backend: written for an earlier atso-transfer"))
    #expect(error.description.contains("Replace it with:\n{"))
  }
  // The simulation backend's earlier key.
  #expect(throws: TransferError.self) {
    try decodeConfiguration(#"{"backend": {"kind": "simulation", "delay-us": "5"}}"#)
  }
}

@Test("--backend-option text becomes typed values; renamed keys name the new one")
func backendOptionText() throws {
  let options = TestOptions(source: "x")
  #expect(try options.setting("size", to: "12").size == 12)
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "command line", key: "backend.size", reason: "'twelve' is not an integer (changes every model)")
  ) { try options.setting("size", to: "twelve") }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "command line", key: "backend.source-steps",
      reason: "renamed to 'sourceSteps' (this configuration was written for an earlier version; "
        + "see `atso-transfer transfer --help`)")
  ) { try options.setting("source-steps", to: "3") }
  #expect(OptionValueKind.integers.value(of: "8, 16,32") == [8, 16, 32])
  #expect(OptionValueKind.numbers.value(of: "0.75,1.25") == [0.75, 1.25])
  #expect(OptionValueKind.integers.value(of: "8,,16") == nil)
  let help = TestOptions.help
  for key in TestOptions.keys { #expect(help.contains("\(key.name)="), "\(key.name) missing") }
  #expect(help.contains("speed only") && help.contains("a data location"))
}

@Test("absurd counts and numbers beyond a float's range are refused with their key")
func absurdConfigurationValues() throws {
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "run.json", key: "folds", reason: "must be at most 1024, got 1099511627776")
  ) { try decodeConfiguration(#"{"folds": 1099511627776}"#) }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "run.json", key: "generations", reason: "must be at most 1000, got 5000")
  ) { try decodeConfiguration(#"{"generations": 5000}"#) }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: "run.json", key: "backend.units",
      reason: "a number beyond the range of a 64-bit float (about 1.8e308)")
  ) { try decodeConfiguration(#"{"backend": {"kind": "simulation", "units": 1e999}}"#) }
}
