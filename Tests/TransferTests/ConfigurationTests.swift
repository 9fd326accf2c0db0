import Foundation
import Testing
@testable import Transfer

func decodeConfiguration(_ json: String) throws -> TransferConfiguration {
  let configuration = try TransferConfiguration.decode(Data(json.utf8), file: "run.json")
  try configuration.validate(file: "run.json")
  return configuration
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
     "backend": {"dataset": "gta5"}}
    """#)
  #expect(full.seed == UInt64.max)
  #expect(full.stages[0].level == .superClass(mapping: "cityscapes-7"))
  #expect(full.stages[2].initialization == .previousStage)
  #expect(full.pseudoLabels.classBalancedPortion == 0.2 && full.pseudoLabels.ignoreIndex == 250)
  let directory = try temporaryDirectory("config")
  try full.save(to: directory + "/run.json")
  #expect(try TransferConfiguration.load(from: directory + "/run.json") == full)
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
          + "pseudoLabels, stages, backend, previews)")
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
      TransferError.invalidConfiguration(file: "run.json", key: "folds", reason: "expected Int")
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
        reason: "a schedules stage restarts from the source model M0; 'previous-stage' would let "
          + "ATSO label folds with a model already fine-tuned on them")
    ),
    (
      #"{"stages": [{"name": "a", "method": "schedules", "colour": 1}]}"#,
      TransferError.invalidConfiguration(
        file: "run.json", key: "stages[0].colour",
        reason: "unknown key (expected one of name, method, level, initialization, network, labels)"
      )
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
    try TransferConfiguration.load(from: "/nonexistent/run.json")
  }
  #expect(
    TransferError.unknownSchedule("x", file: "run.json").description
      == "run.json: unknown schedule 'x' (expected self-learning, stso or atso)")
}
