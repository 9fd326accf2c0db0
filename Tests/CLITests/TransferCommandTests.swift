import ArgumentParser
import Foundation
import Segmentation
import TestSupport
import Testing
import Transfer
@testable import atso_transfer

func parseTransfer(_ arguments: [String]) throws -> TransferCommand {
  let command = try AtsoTransfer.parseAsRoot(["transfer"] + arguments)
  return try #require(command as? TransferCommand)
}

@Test("transfer: every option is a flag and overrides the configuration file")
func transferFlags() throws {
  let directory = try makeTemporaryDirectory("cli-transfer")
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  let file = directory + "/run.json"
  try TransferConfiguration(
    seed: 4, runDirectory: directory + "/run", schedules: [.atso], folds: 2, generations: 5,
    backend: SimulationOptions(units: 9)
  ).save(to: file)
  let command = try parseTransfer([
    "--config", file, "--seed", "9", "--schedules", "self-learning,stso", "atso", "--folds", "3",
    "--class-balanced-portion", "0.2", "--ada-bn", "--ignore-index", "250",
    "--stage", "name=coarse,method=schedules,level=super:m7",
    "--stage", "name=fine,method=train,initialization=previous-stage,labels=relabel",
    "--backend-option", "delayMicroseconds=2", "--source-model", "m0.json",
  ])
  let resolved = try command.resolvedConfiguration()
  #expect(resolved.seed == 9 && resolved.folds == 3 && resolved.generations == 5)
  #expect(resolved.schedules == [.selfLearning, .stso, .atso])
  #expect(resolved.runDirectory == directory + "/run")
  #expect(resolved.pseudoLabels.classBalancedPortion == 0.2)
  #expect(resolved.pseudoLabels.adaptBatchNorm && resolved.pseudoLabels.ignoreIndex == 250)
  #expect(resolved.stages.map(\.name) == ["coarse", "fine"])
  #expect(resolved.stages[0].level == .superClass(mapping: "m7"))
  #expect(
    resolved.stages[1].initialization == .previousStage && resolved.stages[1].labels == .relabel)
  #expect(resolved.backend as? SimulationOptions == SimulationOptions(units: 9, delayMicroseconds: 2))
  #expect(resolved.sourceModel == URL(fileURLWithPath: "m0.json").standardizedFileURL.path)
  // Resolved once: validate() keeps the configuration run() uses.
  #expect(command.resolved == resolved)
  let defaults = try parseTransfer(["-o", "somewhere", "--no-ada-bn"]).resolvedConfiguration()
  #expect(defaults.schedules == ScheduleKind.allCases && defaults.folds == 2)
  #expect(!defaults.pseudoLabels.adaptBatchNorm)
}

/// Invalid `transfer` flags and the message each gives.
let transferValidationCases: [(arguments: [String], message: String)] = [
    (["-o", "r", "--folds", "1"], "command line: folds: ATSO needs K >= 2 folds, got 1"),
    (["-o", "r", "--generations", "0"], "command line: generations: must be at least 1, got 0"),
    (
      ["-o", "r", "--schedules", "atso,mean-teacher"],
      "--schedules: unknown schedule 'mean-teacher' (expected self-learning, stso or atso)"
    ),
    ([] as [String], "no run directory: give --run-directory or runDirectory in --config"),
    (
      ["-o", "r", "--stage", "name=a,method=sometimes"],
      "--stage 'name=a,method=sometimes': method: 'sometimes' is not schedules or train"
    ),
    (
      ["-o", "r", "--stage", "name=a,method=schedules,level=coarse"],
      "--stage 'name=a,method=schedules,level=coarse': unknown label level 'coarse' "
        + "(expected 'fine' or 'super:<mapping>')"
    ),
    (["-o", "r", "--backend-option", "epochs"], "--backend-option 'epochs': expected key=value"),
    (
      ["-o", "r", "--backend-option", "source-iterations=400"],
      "--backend-option: backend.source-iterations: renamed to 'sourceIterations' (this "
        + "configuration was written for an earlier version; see `atso-transfer transfer --help`)"
    ),
    (
      ["-o", "r", "--backend-option", "kind=simulation", "--backend-option", "units=many"],
      "--backend-option: backend.units: 'many' is not an integer (reference units unit0, unit1, ...)"
    ),
    (
      ["-o", "r", "--backend-option", "kind=simulation", "--backend-option", "units=0"],
      "command line: backend.units: must be at least 1, got 0"
    ),
    (
      ["-o", "r", "--backend-option", "source=camvid:/a"],
      "command line: backend.test: missing"
    ),
    (
      ["-o", "r", "--stage", "name=a,method=schedules,colour=red"],
      "--stage 'name=a,method=schedules,colour=red': colour: unknown key "
        + "(expected one of name, method, level, initialization, network, labels, generations)"
    ),
    (
      ["-o", "r", "--confidence-threshold", "0.9", "--class-balanced-portion", "0.5"],
      "command line: pseudoLabels: "
        + "confidenceThreshold and classBalancedPortion are mutually exclusive"
    ),
    (
      ["--config", "/nonexistent/run.json"], "/nonexistent/run.json: cannot read the configuration"
    ),
]

@Test("transfer: invalid flags are refused with a clear message", arguments: transferValidationCases)
func transferValidation(arguments: [String], message: String) {
  do {
    _ = try AtsoTransfer.parseAsRoot(["transfer"] + arguments)
    Issue.record("\(arguments) parsed")
  } catch {
    #expect(AtsoTransfer.message(for: error) == message)
  }
}

let missingBackend = TransferError.invalidConfiguration(
  file: "command line", key: "backend",
  reason: "missing: give the backend's kind and data (e.g. --backend-option kind=image "
    + "--backend-option source=SPEC ...; `atso-transfer transfer --help` lists the keys)")

@Test("transfer --dry-run needs no backend; a real run without datasets names the missing key")
func transferRunWithoutBackend() throws {
  let directory = try makeTemporaryDirectory("cli-nobackend") + "/run"
  let dry = try parseTransfer(["-o", directory, "--dry-run"])
  try dry.run()
  try parseTransfer(["--dry-run"]).run()  // no run directory needed to print a configuration
  let command = try parseTransfer(["-o", directory])
  #expect(throws: missingBackend) { try command.run() }
  #expect(!FileManager.default.fileExists(atPath: directory), "nothing is written")
}

@Test("resume: takes a run directory and checks it")
func resumeParsing() throws {
  let directory = try makeTemporaryDirectory("cli-resume") + "/run"
  do {
    _ = try AtsoTransfer.parseAsRoot(["resume", directory])
    Issue.record("a missing run directory was accepted")
  } catch {
    #expect(
      AtsoTransfer.message(for: error)
        == "'\(directory)' is not a run directory (no configuration.json)")
  }
  try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
  try TransferConfiguration(runDirectory: directory).save(to: directory + "/configuration.json")
  let command = try #require(try AtsoTransfer.parseAsRoot(["resume", directory]) as? ResumeCommand)
  #expect(command.runDirectory == directory)
  // Another writer holds the run: refused at once, before the backend reads any data.
  try RunLock.holding(directory) {
    do {
      try command.run()
      Issue.record("resume ran while another process held the lock")
    } catch TransferError.runDirectory(_, let reason) {
      #expect(reason.hasPrefix("in use by process \(getpid())"), "\(reason)")
    }
  }
  #expect(
    throws: TransferError.invalidConfiguration(
      file: directory + "/configuration.json", key: "backend",
      reason: "missing: give the backend's kind and data (e.g. --backend-option kind=image "
        + "--backend-option source=SPEC ...; `atso-transfer transfer --help` lists the keys)")
  ) { try command.run() }
  #expect(AtsoTransfer.helpMessage(for: ResumeCommand.self).contains("kill -9"))
  let help = AtsoTransfer.helpMessage(for: TransferCommand.self)
  for flag in [
    "--config", "--run-directory", "--seed", "--schedules", "--folds", "--generations",
    "--confidence-threshold", "--class-balanced-portion", "--ada-bn", "--stage",
    "--backend-option", "--source-model", "--dry-run", "sourceIterations=", "dataset=",
    "delayMicroseconds=",
  ] {
    #expect(help.contains(flag), "\(flag) missing from --help")
  }
}
