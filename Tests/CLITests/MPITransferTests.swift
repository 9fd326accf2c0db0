import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

let mpiTransferReady = mpirunExecutable != nil && atsoTransferExecutable != nil

/// `transfer` and `resume` under `mpirun`: the same files as one process, however the run is
/// interrupted, resumed or loses a rank.
@Suite(
  "transfer under mpirun", .serialized,
  .enabled(
    if: mpiTransferReady, Comment(rawValue: mpirunMissing + ", or atso-transfer is not built")))
struct MPITransferTests {
  /// A simulation run: 3 folds, 2 generations, all schedules (33 jobs), `delay` µs per unit.
  func simulation(_ root: String, delay: Int) throws -> String {
    let file = root + "/run.json"
    let json = """
      {"seed": 7, "folds": 3, "generations": 2, "schedules": ["self-learning", "stso", "atso"],
       "backend": {"kind": "simulation", "units": 8, "delayMicroseconds": \(delay)}}
      """
    try Data(json.utf8).write(to: URL(fileURLWithPath: file))
    return file
  }

  func records(_ directory: String) -> Int { completedRecords(directory).count }

  /// Runs `arguments` to the end (under mpirun with `ranks`, or alone); returns the process.
  @discardableResult
  func run(
    _ ranks: Int?, extra: [String] = [], _ arguments: [String], log: String
  ) throws -> RecordedProcess {
    let process = try RecordedProcess(
      mpi: ranks, extra: extra, try #require(atsoTransferExecutable), arguments, log: log)
    process.wait()
    return process
  }

  /// Every file of the run but the configurations (which name the run directory) and the lock
  /// (the process id of its last holder).
  func results(_ directory: String) -> [String: Data] {
    directoryContents(
      directory, skip: ["configuration.json", "configuration.started.json", "run.lock"])
  }

  func expectSameRun(_ directory: String, as reference: String) {
    let expected = results(reference)
    let actual = results(directory)
    #expect(expected.keys.sorted() == actual.keys.sorted())
    let differing = expected.keys.filter { expected[$0] != actual[$0] }.sorted()
    #expect(differing.isEmpty, "files differing from one process's: \(differing)")
    #expect(expected["table.json"] != nil)
  }

  /// Transfer flags of a tiny image run on synthetic scenes written under `root/scenes`
  /// (`scenes` is the data's path in the flags: absolute by default).
  func tinyImageRun(_ root: String, scenes: String? = nil) throws -> [String] {
    try run(
      nil,
      [
        "dataset", "synthesize", "--output", root + "/scenes", "--count", "6", "--width", "48",
        "--height", "32",
      ], log: root + "/scenes.log")
    let data = scenes ?? root + "/scenes"
    return [
      "--seed", "3", "--folds", "2", "--generations", "1", "--schedules", "self-learning,atso",
      "--previews", "2", "--backend-option", "kind=image",
      "--backend-option", "source=cityscapes:\(data)/source:train",
      "--backend-option", "reference=mapillary:\(data)/target:training?unlabeled",
      "--backend-option", "test=mapillary:\(data)/target:training",
      "--backend-option", "classes=cityscapes-19", "--backend-option", "widths=4,8",
      "--backend-option", "size=32x48", "--backend-option", "batch=2",
      "--backend-option", "sourceIterations=6", "--backend-option", "finetuneIterations=3",
      "--backend-option", "threads=1", "--backend-option", "mappings=\(packageMappings)",
    ]
  }

  @Test("2 ranks write the files of one process: the simulation and the image backend")
  func sameFilesAsOneProcess() throws {
    let root = try makeTemporaryDirectory("mpi-same")
    let file = try simulation(root, delay: 1000)
    try run(nil, ["transfer", "--config", file, "-o", root + "/one"], log: root + "/one.log")
    let two = try run(
      2, ["transfer", "--config", file, "-o", root + "/two"], log: root + "/two.log")
    #expect(two.process.terminationStatus == 0, "\(two.lines.suffix(10))")
    expectSameRun(root + "/two", as: root + "/one")
    #expect(two.lines.contains { $0.hasPrefix("[rank 0/2] job ") && $0.contains("on rank 1") })

    // Real training, labels and previews on tiny synthetic scenes.
    let image = try tinyImageRun(root)
    try run(nil, ["transfer", "-o", root + "/image-one"] + image, log: root + "/image-one.log")
    let images = try run(
      2, ["transfer", "-o", root + "/image-two"] + image, log: root + "/image-two.log")
    #expect(images.process.terminationStatus == 0, "\(images.lines.suffix(10))")
    expectSameRun(root + "/image-two", as: root + "/image-one")
    #expect(FileManager.default.fileExists(atPath: root + "/image-two/predictions.png"))
  }

  @Test("killed under MPI, resumed under MPI and then in one process; the other way round")
  func killedAndResumed() throws {
    let root = try makeTemporaryDirectory("mpi-kill")
    let file = try simulation(root, delay: 20000)
    try run(nil, ["transfer", "--config", file, "-o", root + "/reference"], log: root + "/r.log")
    let jobs = records(root + "/reference")
    #expect(jobs > 30)

    // Under MPI (every rank and mpirun killed), under MPI again, then one process.
    let run = root + "/mpi"
    let first = try RecordedProcess(
      mpi: 2, try #require(atsoTransferExecutable), ["transfer", "--config", file, "-o", run],
      log: root + "/mpi1.log")
    #expect(waitUntil(seconds: 60) { records(run) >= 8 })
    first.killAll()
    let afterFirst = records(run)
    #expect(afterFirst < jobs, "finished before the kill")
    let second = try RecordedProcess(
      mpi: 2, try #require(atsoTransferExecutable), ["resume", run], log: root + "/mpi2.log")
    #expect(waitUntil(seconds: 60) { records(run) >= afterFirst + 8 })
    second.killAll()
    #expect(records(run) < jobs, "finished before the second kill")
    let last = try self.run(nil, ["resume", run], log: root + "/mpi3.log")
    #expect(last.process.terminationStatus == 0)
    expectSameRun(run, as: root + "/reference")

    // One process killed, resumed under MPI.
    let other = root + "/single"
    let single = try RecordedProcess(
      mpi: nil, try #require(atsoTransferExecutable), ["transfer", "--config", file, "-o", other],
      log: root + "/single1.log")
    #expect(waitUntil(seconds: 60) { records(other) >= 8 })
    single.killAll()
    #expect(records(other) < jobs)
    let resumed = try self.run(2, ["resume", other], log: root + "/single2.log")
    #expect(resumed.process.terminationStatus == 0, "\(resumed.lines.suffix(10))")
    expectSameRun(other, as: root + "/reference")
  }

  @Test("a rank killed mid-job (mpirun --enable-recovery) loses only its job: same results")
  func rankKilledMidJob() throws {
    let root = try makeTemporaryDirectory("mpi-rank")
    let file = try simulation(root, delay: 25000)
    try run(nil, ["transfer", "--config", file, "-o", root + "/reference"], log: root + "/r.log")
    let run = root + "/recovered"
    let process = try RecordedProcess(
      mpi: 3, extra: ["--enable-recovery"], try #require(atsoTransferExecutable),
      ["transfer", "--config", file, "-o", run, "--rank-timeout", "2"], log: root + "/mpi.log")
    // Rank 1's process id, once it has a job (rank 0 says both).
    var victim: Int?
    #expect(
      waitUntil(seconds: 60) {
        let lines = process.lines
        guard lines.contains(where: { $0.contains("started on rank 1") }),
          let joined = lines.first(where: { $0.contains("rank 1 joined") }),
          let id = joined.split(separator: " ").last.flatMap({ Int($0.dropLast()) })
        else { return false }
        victim = id
        return true
      })
    let pid = try #require(victim)
    kill(pid_t(pid), SIGKILL)
    // Bounded: a rank that never ends (once seen under heavy load) fails the test, not the suite.
    #expect(process.wait(seconds: 240) == 0, "\(process.lines.suffix(15))")
    #expect(process.lines.contains { $0.hasPrefix("[rank 0/3] rank 1 lost (silent for ") })
    expectSameRun(run, as: root + "/reference")
  }

  /// The largest difference between the numbers of two JSON documents of the same shape
  /// (nil if their shapes, keys or strings differ).
  func largestDifference(_ a: Any, _ b: Any) -> Double? {
    switch (a, b) {
    case (let a as [String: Any], let b as [String: Any]):
      guard a.keys.sorted() == b.keys.sorted() else { return nil }
      return a.keys.reduce(0.0) { worst, key in
        guard let worst, let d = largestDifference(a[key] ?? 0, b[key] ?? 0) else { return nil }
        return max(worst, d)
      }
    case (let a as [Any], let b as [Any]):
      guard a.count == b.count else { return nil }
      return zip(a, b).reduce(0.0) { worst, pair in
        guard let worst, let d = largestDifference(pair.0, pair.1) else { return nil }
        return max(worst, d)
      }
    case (let a as NSNumber, let b as NSNumber): return abs(a.doubleValue - b.doubleValue)
    case (let a as String, let b as String): return a == b ? 0 : nil
    default: return a is NSNull && b is NSNull ? 0 : nil
    }
  }

  /// `table.json` of `directory` against the reference's: the same rows, scores within 1e-3.
  func expectSameTable(_ directory: String, as reference: String) throws {
    let read = { (path: String) throws -> Any in
      try JSONSerialization.jsonObject(
        with: try Data(contentsOf: URL(fileURLWithPath: path + "/table.json")))
    }
    let difference = largestDifference(try read(directory), try read(reference))
    #expect(difference != nil, "table.json of \(directory) has other rows or labels")
    #expect((difference ?? 1) <= 1e-3, "scores differ by \(difference ?? -1)")
  }

  /// Removes the completion records of the jobs whose id contains `part` and the tables, as
  /// if the run had stopped before them.
  func undo(_ directory: String, jobsContaining part: String) throws -> Int {
    let steps = directory + "/steps"
    let undone = try FileManager.default.contentsOfDirectory(atPath: steps).filter {
      $0.contains(part)
    }
    for name in undone + ["../table.json"] {
      try FileManager.default.removeItem(atPath: steps + "/" + name)
    }
    return undone.count
  }

  @Test("--ranks-per-job 2: the ranks train each model together, one process's table; resumed")
  func ranksPerJob() throws {
    let root = try makeTemporaryDirectory("mpi-group")
    let image = try tinyImageRun(root)
    try run(nil, ["transfer", "-o", root + "/one"] + image, log: root + "/one.log")
    let group = root + "/group"
    let grouped = try run(
      2, ["transfer", "-o", group, "--ranks-per-job", "2"] + image, log: root + "/group.log")
    #expect(grouped.process.terminationStatus == 0, "\(grouped.lines.suffix(10))")
    #expect(grouped.lines.contains("[rank 0/2] running on 2 ranks in groups of 2 (one job each)"))
    let trained = grouped.lines.filter { $0.hasSuffix(" s, data-parallel over 2 ranks") }
    #expect(trained.count == 5, "\(grouped.lines)")  // the source model and 4 students
    #expect(!grouped.lines.contains { $0.hasPrefix("[rank 1/2]") })  // the member is quiet
    try expectSameTable(group, as: root + "/one")
    // Data-parallel, so not bitwise: the loss curves agree to float rounding.
    for job in ["train-source", "finetune-fine-atso-g1-m1"] {
      let curve = { (run: String) throws -> [[Double]] in
        try String(contentsOfFile: "\(run)/losses/\(job).csv", encoding: .utf8)
          .split(separator: "\n").dropFirst().map { $0.split(separator: ",").compactMap { Double($0) } }
      }
      let (a, b) = (try curve(group), try curve(root + "/one"))
      #expect(a.count == b.count && !a.isEmpty)
      for (x, y) in zip(a, b) {
        #expect(x[0] == y[0] && abs(x[1] - y[1]) <= 1e-5 * abs(y[1]), "\(job): \(x) vs \(y)")
      }
    }

    // 4 ranks in 2 groups: the farm hands jobs to both leaders (world ranks 0 and 2).
    let four = try run(
      4, ["transfer", "-o", root + "/four", "--ranks-per-job", "2"] + image,
      log: root + "/four.log")
    #expect(four.process.terminationStatus == 0, "\(four.lines.suffix(10))")
    #expect(four.lines.contains { $0.hasPrefix("[rank 0/4] rank 2 joined") })
    #expect(four.lines.contains { $0.hasPrefix("[rank 0/4] job ") && $0.hasSuffix(" on rank 2") })
    try expectSameTable(root + "/four", as: root + "/one")

    // Stopped before the final models: resumed with groups, then in one process.
    #expect(try undo(group, jobsContaining: "atso-final") >= 4)
    let resumed = try run(
      2, ["resume", group, "--ranks-per-job", "2"], log: root + "/resume.log")
    #expect(resumed.process.terminationStatus == 0, "\(resumed.lines.suffix(10))")
    #expect(resumed.lines.contains { $0.contains("job finetune-fine-atso-final started on rank 0") })
    try expectSameTable(group, as: root + "/one")
    #expect(try undo(group, jobsContaining: "atso-final") >= 4)
    let alone = try run(nil, ["resume", group], log: root + "/alone.log")
    #expect(alone.process.terminationStatus == 0)
    try expectSameTable(group, as: root + "/one")

    // R must divide the ranks.
    let odd = try run(
      2, ["transfer", "-o", root + "/odd", "--ranks-per-job", "3"] + image, log: root + "/odd.log")
    #expect(odd.process.terminationStatus != 0)
    #expect(
      odd.lines.contains {
        $0.contains("--ranks-per-job 3 does not divide the 2 ranks of mpirun: give one of 1, 2")
      }, "\(odd.lines)")
  }

  @Test("a rank of a group killed mid-training (--enable-recovery): its leader trains alone")
  func groupMemberKilled() throws {
    let root = try makeTemporaryDirectory("mpi-group-kill")
    let image = try tinyImageRun(root).map {
      $0 == "sourceIterations=6" ? "sourceIterations=3000" : $0
    }
    try run(nil, ["transfer", "-o", root + "/one"] + image, log: root + "/one.log")
    let directory = root + "/group"
    let process = try RecordedProcess(
      mpi: 2, extra: ["--enable-recovery"], try #require(atsoTransferExecutable),
      ["transfer", "-o", directory, "--ranks-per-job", "2", "--rank-timeout", "2"] + image,
      log: root + "/group.log")
    #expect(
      waitUntil(seconds: 60) { process.lines.contains { $0.contains("job train-source started") } })
    // World rank 1, the member: mpirun's child whose environment says so.
    let member = childProcesses(of: Int(process.process.processIdentifier)).first { pid in
      let environment = (try? String(contentsOfFile: "/proc/\(pid)/environ", encoding: .utf8)) ?? ""
      return environment.split(separator: "\0").contains("OMPI_COMM_WORLD_RANK=1")
    }
    kill(pid_t(try #require(member)), SIGKILL)
    #expect(process.wait(seconds: 240) == 0, "\(process.lines.suffix(15))")
    #expect(
      process.lines.contains { $0.hasPrefix("[rank 0/2] rank 1 of the group of rank 0 lost; job ") },
      "\(process.lines.suffix(15))")
    try expectSameTable(directory, as: root + "/one")
  }

  @Test("a rank that cannot open the run stops every rank with its error, labelled")
  func rankFailure() throws {
    let root = try makeTemporaryDirectory("mpi-fail")
    // The data's path is relative, and rank 1 starts in another folder (as on a host whose
    // folders differ): its backend does not find the data.
    let flags = try tinyImageRun(root, scenes: "scenes")
    try FileManager.default.createDirectory(
      atPath: root + "/elsewhere", withIntermediateDirectories: true)
    let executable = try #require(atsoTransferExecutable)
    let arguments = ["transfer", "-o", root + "/run"] + flags
    let process = try RecordedProcess(
      try #require(mpirunExecutable),
      ["--allow-run-as-root", "--oversubscribe", "-np", "1", "-wdir", root, executable]
        + arguments + [":", "-np", "1", "-wdir", root + "/elsewhere", executable] + arguments,
      log: root + "/mpi.log")
    #expect(process.wait() != 0)
    let message =
      "Error: rank 1: scenes/source/leftImg8bit/train: missing (Cityscapes image folder)"
    #expect(process.lines.contains("[rank 0/2] " + message), "\(process.lines)")
    #expect(process.lines.filter { $0.hasSuffix(message) }.count == 2)  // rank 0 and rank 1
    #expect(!FileManager.default.fileExists(atPath: root + "/run/table.json"))

    // The same with one group: rank 1 fails its part of the first training, rank 0 says so.
    let grouped = arguments.map { $0 == root + "/run" ? root + "/grouped" : $0 }
    let group = try RecordedProcess(
      try #require(mpirunExecutable),
      ["--allow-run-as-root", "--oversubscribe", "-np", "1", "-wdir", root, executable]
        + grouped + ["--ranks-per-job", "2", ":", "-np", "1", "-wdir", root + "/elsewhere",
        executable] + grouped + ["--ranks-per-job", "2"],
      log: root + "/group.log")
    #expect(group.wait() != 0)
    #expect(
      group.lines.contains("[rank 0/2] Error: rank 0, job train-source: rank 1: " + message.dropFirst(15)),
      "\(group.lines)")
    #expect(!FileManager.default.fileExists(atPath: root + "/grouped/table.json"))
  }
}
