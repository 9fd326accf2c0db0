// A small program for the Cluster tests, started by `mpirun` (or alone, as one rank).
//
//   cluster-probe ranks
//   cluster-probe sum COUNT
//   cluster-probe fail RANK STEP
//   cluster-probe farm DIR WIDTH GENERATIONS DELAY_MS [kill=RANK:JOB] [stop=RANK:JOB]
//                 [fail=JOB] [openfail=RANK] [timeout=SECONDS]
//
// Every line a rank prints starts with "[rank R/N]". Exit status: 0, or 2 after an error.
import Cluster
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

struct ProbeError: Error, CustomStringConvertible {
  var description: String
}

func fnv(_ bytes: [UInt8]) -> UInt64 {
  var hash: UInt64 = 0xcbf2_9ce4_8422_2325
  for byte in bytes { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
  return hash
}

/// The values rank `rank` contributes to the sums: magnitudes that make the order matter.
func contribution(rank: Int, count: Int) -> [Float] {
  (0..<count).map { i in Float(sin(Double(rank * count + i) * 0.37)) * Float(1 << ((rank + i) % 7))
  }
}

func farm(world: Communicator, say: @escaping (String) -> Void) throws {
  let arguments = Array(CommandLine.arguments.dropFirst())
  let directory = arguments[1]
  let width = Int(arguments[2]) ?? 2
  let generations = Int(arguments[3]) ?? 2
  let delay = UInt32(arguments[4]) ?? 0
  var options: [String: String] = [:]
  for argument in arguments.dropFirst(5) {
    let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
    if parts.count == 2 { options[parts[0]] = parts[1] }
  }
  func target(_ key: String) -> (rank: Int, job: String)? {
    guard let value = options[key], let colon = value.firstIndex(of: ":"),
      let rank = Int(value[..<colon])
    else { return nil }
    return (rank, String(value[value.index(after: colon)...]))
  }
  let kill = target("kill")
  let stop = target("stop")
  let failing = options["fail"]
  let openFailure = options["openfail"].flatMap(Int.init)
  let timeout = Double(options["timeout"] ?? "") ?? 5
  let rank = world.rank

  let farm = try JobFarm(
    communicator: world,
    options: FarmOptions(
      heartbeat: .milliseconds(100), timeout: .milliseconds(Int(timeout * 1000))))

  let open: @Sendable ([UInt8]) throws -> JobFarm.Executor = { start in
    let directory = String(decoding: start, as: UTF8.self)
    if openFailure == rank {
      throw ProbeError(description: "cannot open \(directory) on this rank")
    }
    return { job in
      let marker = directory + "/fault-\(job.id)"
      if let kill, kill.rank == rank, kill.job == job.id,
        FileManager.default.createFile(atPath: marker, contents: nil)
      {
        raise(SIGKILL)
      }
      if let stop, stop.rank == rank, stop.job == job.id,
        FileManager.default.createFile(atPath: marker, contents: nil)
      {
        raise(SIGSTOP)
      }
      if failing == job.id { throw ProbeError(description: "job \(job.id) failed on purpose") }
      var input = Array(job.id.utf8)
      for dependency in String(decoding: job.payload, as: UTF8.self).split(separator: ",") {
        guard let data = FileManager.default.contents(atPath: directory + "/out/\(dependency)")
        else {
          throw ProbeError(description: "dependency \(dependency) of \(job.id) is missing")
        }
        input += Array(data)
      }
      usleep(delay * 1000)
      let output = Array(String(fnv(input), radix: 16).utf8)
      let path = directory + "/out/\(job.id)"
      try Data(output).write(to: URL(fileURLWithPath: path + ".partial-\(rank)"))
      _ = rename(path + ".partial-\(rank)", path)
      return output
    }
  }

  if rank == 0 {
    try FileManager.default.createDirectory(
      atPath: directory + "/out", withIntermediateDirectories: true)
    var jobs: [FarmJob] = []
    for generation in 0..<generations {
      let previous = generation == 0 ? [] : (0..<width).map { "g\(generation - 1)-\($0)" }
      for k in 0..<width {
        jobs.append(
          FarmJob(
            id: "g\(generation)-\(k)", dependencies: previous,
            payload: Array(previous.joined(separator: ",").utf8)))
      }
    }
    var results: [String: String] = [:]
    try farm.run(
      start: Array(directory.utf8), jobs: jobs, execute: try open(Array(directory.utf8)),
      complete: { job, result in results[job.id] = String(decoding: result, as: UTF8.self) },
      event: { event in say("\(event)") })
    let summary = results.keys.sorted().map { "\($0) \(results[$0] ?? "")" }.joined(separator: "\n")
    try Data((summary + "\n").utf8).write(to: URL(fileURLWithPath: directory + "/summary.txt"))
    say("farm finished: \(results.count) jobs")
  } else {
    try farm.serve(open: open)
    say("served")
  }
}

/// The tree order of `Communicator.sum`, written out recursively: rank `r`'s subtree of
/// width `m` is `((g[r] + T(r + 1, 1)) + T(r + 2, 2)) + T(r + 4, 4) ...`.
func referenceSum(_ values: [[Float]]) -> [Float] {
  func subtree(_ r: Int, _ m: Int) -> [Float] {
    var total = values[r]
    var step = 1
    while step < m && r + step < values.count {
      let child = subtree(r + step, step)
      for i in total.indices { total[i] += child[i] }
      step *= 2
    }
    return total
  }
  return subtree(0, Int.max)
}

let arguments = Array(CommandLine.arguments.dropFirst())
var status: Int32 = 0
do {
  let world = try Cluster.world()
  let label = "[rank \(world.rank)/\(world.size)]"
  func say(_ text: String) {
    FileHandle.standardError.write(Data("\(label) \(text)\n".utf8))
  }
  do {
    switch arguments.first {
    case "ranks":
      say("host \(Cluster.hostName) mpi \(Cluster.isLaunchedByMPI)")
      say("recovery \(Cluster.isRecoveryEnabled)")
      try world.barrier()

    case "sum":
      let count = Int(arguments[1]) ?? 0
      let floats = try world.sum(contribution(rank: world.rank, count: count))
      let doubles = try world.sum(contribution(rank: world.rank, count: count).map(Double.init))
      let floatBits = floats.withUnsafeBytes { Array($0) }
      let doubleBits = doubles.withUnsafeBytes { Array($0) }
      let hashes = "\(String(fnv(floatBits), radix: 16)) \(String(fnv(doubleBits), radix: 16))"
      say("sum \(hashes) count \(floats.count)")
      if world.rank == 0 {
        let reference = referenceSum((0..<world.size).map { contribution(rank: $0, count: count) })
        var sequential = contribution(rank: 0, count: count)
        for r in 1..<max(1, world.size) {
          for (i, value) in contribution(rank: r, count: count).enumerated() {
            sequential[i] += value
          }
        }
        say("reference \(reference == floats ? "equal" : "different")")
        say("rank-order sum \(sequential == floats ? "equal" : "different")")
      }
      let broadcast = try world.broadcast(world.rank == 0 ? Array("from rank 0".utf8) : [])
      say("broadcast \(String(decoding: broadcast, as: UTF8.self))")

    case "time-sum":
      // Seconds per sum of COUNT floats, over REPEATS sums (for the scale-out notes).
      let count = Int(arguments[1]) ?? 1
      let repeats = Int(arguments[2]) ?? 10
      let values = contribution(rank: world.rank, count: count)
      _ = try world.sum(values)
      let start = ContinuousClock.now
      for _ in 0..<repeats { _ = try world.sum(values) }
      let seconds =
        Double((ContinuousClock.now - start).components.attoseconds) / 1e18
        + Double((ContinuousClock.now - start).components.seconds)
      if world.rank == 0 { say("time-sum \(count) floats: \(seconds / Double(repeats) * 1e6) us") }

    case "fail":
      let failing = Int(arguments[1]) ?? 0
      let step = Int(arguments[2]) ?? 0
      for i in 0..<5 {
        if world.rank == failing && i == step {
          try world.fail(ProbeError(description: "probe failure at step \(i)"))
        }
        _ = try world.sum([Float(i)])
      }
      say("finished")

    case "farm":
      try farm(world: world, say: say)

    default:
      throw ProbeError(description: "unknown mode \(arguments.first ?? "(none)")")
    }
  } catch {
    say("error: \(error)")
    status = 2
  }
} catch {
  FileHandle.standardError.write(Data("cluster-probe: \(error)\n".utf8))
  status = 2
}
Cluster.finalize()
exit(status)
