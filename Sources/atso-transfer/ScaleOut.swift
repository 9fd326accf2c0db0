import ArgumentParser
import Cluster
import Foundation
import Segmentation
import Transfer

/// Options of the commands that run on many ranks under `mpirun` (ignored in one process).
struct RankOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Under mpirun: a rank silent this long (seconds) is lost and its job runs elsewhere.",
      valueName: "seconds"))
  var rankTimeout: Double = 60

  @Option(
    help: ArgumentHelp(
      "Under mpirun: ranks that run each job together, training its model data-parallel "
        + "(the N ranks form N/R groups; R must divide N).",
      valueName: "R"))
  var ranksPerJob: Int = 1

  func validate() throws {
    guard rankTimeout.isFinite, rankTimeout >= 1 else {
      throw ValidationError("--rank-timeout must be at least 1 second, got \(rankTimeout)")
    }
    guard ranksPerJob >= 1 else {
      throw ValidationError("--ranks-per-job must be at least 1, got \(ranksPerJob)")
    }
  }

  /// Checks ``ranksPerJob`` against the `ranks` of mpirun.
  func validate(ranks: Int) throws {
    guard ranks % ranksPerJob == 0 else {
      let divisors = (1...ranks).filter { ranks % $0 == 0 }.map(String.init)
      throw ValidationError(
        "--ranks-per-job \(ranksPerJob) does not divide the \(ranks) ranks of mpirun: give one "
          + "of \(divisors.joined(separator: ", ")), or start a multiple of \(ranksPerJob) ranks")
    }
  }

  /// The farm's options: heartbeats ten times per timeout, at most every second.
  var farmOptions: FarmOptions {
    let timeout = Duration.milliseconds(Int(rankTimeout * 1000))
    return FarmOptions(heartbeat: min(.seconds(1), timeout / 10), timeout: timeout)
  }
}

/// What the commands do differently under `mpirun`: labelled output, the job farm.
enum ScaleOut {
  /// `[rank r/N] ` under mpirun, "" in one process (or before MPI is initialized).
  static var label: String {
    guard Cluster.isLaunchedByMPI, let world = try? Cluster.world(), world.size > 1 else {
      return ""
    }
    return "[rank \(world.rank)/\(world.size)] "
  }

  /// Writes a line to standard error, labelled with the rank under mpirun.
  static func log(_ line: String) {
    FileHandle.standardError.write(Data((label + line + "\n").utf8))
  }

  /// Prints rank 0's view of the farm; with groups of `perJob` ranks, the farm's rank `r` is
  /// the leader of world ranks `r * perJob ..< (r + 1) * perJob`, named by its world rank.
  static func print(_ event: FarmEvent, perJob: Int = 1) {
    switch event.mappingRanks({ $0 * perJob }) {
    case .joined(let rank, let host, let processID):
      log("rank \(rank) joined (host \(host), process \(processID))")
    case .started(let job, let rank, _):
      log("job \(job) started on rank \(rank)")
    case .finished(let job, let rank, let seconds):
      log("job \(job) finished on rank \(rank) in \(String(format: "%.1f", seconds)) s")
    case .lost(let rank, let job, let seconds):
      let what = job.map { "; job \($0) runs again elsewhere" } ?? ""
      log("rank \(rank) lost (silent for \(Int(seconds)) s)\(what)")
      if !Cluster.isRecoveryEnabled {
        log("(without mpirun --enable-recovery, a dead rank ends the whole job)")
      }
    case .killedLost(let rank, let processID):
      log("killed lost rank \(rank) (process \(processID)), which was still alive")
    case .groupMembersLost(let leader, let members, let job):
      let names = members.map(String.init).joined(separator: ", ")
      log(
        "rank \(names) of the group of rank \(leader) lost; job \(job) and the group's later "
          + "jobs train on rank \(leader) alone")
    }
  }

  /// Runs a transfer under mpirun: rank 0 executes `run` over the ranks and returns true; the
  /// other ranks open the run directory rank 0 names, serve jobs, and return false. In one
  /// process, returns nil (the caller runs as usual).
  static func execute(
    options: RankOptions, rankZero: () throws -> TransferRun
  ) throws -> Bool? {
    let world = try Cluster.world()
    guard world.size > 1 else { return nil }
    try options.validate(ranks: world.size)
    let perJob = options.ranksPerJob
    guard perJob > 1 else {
      let farm = try JobFarm(communicator: world, options: options.farmOptions)
      return try execute(farm: farm, group: nil, ranks: world.size, rankZero: rankZero)
    }
    // Groups of `perJob` consecutive ranks; the farm runs over their leaders.
    let group = try JobGroup(
      world: world, size: perJob, options: options.farmOptions, event: { print($0) })
    let leaders = try world.split(group: group.isLeader ? 0 : 1, key: world.rank)
    guard group.isLeader else {
      try TransferRun.serve(member: group) { directory in
        try TransferRun.open(directory, quiet: true)
      }
      return false
    }
    let farm = try JobFarm(communicator: leaders, options: options.farmOptions)
    do {
      let result = try execute(farm: farm, group: group, ranks: world.size, rankZero: rankZero)
      group.stop(failure: nil)
      return result
    } catch {
      group.stop(failure: error)
      throw error
    }
  }

  private static func execute(
    farm: JobFarm, group: JobGroup?, ranks: Int, rankZero: () throws -> TransferRun
  ) throws -> Bool {
    if farm.communicator.rank == 0 {
      let run: TransferRun
      do {
        run = try rankZero()
      } catch {
        farm.stop(failure: error)
        throw error
      }
      let groups = group.map { " in groups of \($0.control.size) (one job each)" } ?? ""
      log("running on \(ranks) ranks\(groups)")
      if let group, group.control.size > 1, let warning = idleGroupWarning(
        backend: run.configuration.backend.map { type(of: $0).kind } ?? "image",
        trainsTogether: run.trainsDataParallel,
        perJob: group.control.size, ranks: ranks)
      {
        log(warning)
      }
      let perJob = group?.control.size ?? 1
      try run.execute(on: farm, group: group) { print($0, perJob: perJob) }
      return true
    }
    try TransferRun.serve(farm: farm, group: group) { directory in
      try TransferRun.open(directory)
    }
    return false
  }
}

extension ScaleOut {
  /// The warning for groups of ranks whose backend trains on one rank: the other ranks of each
  /// group wait through every job (nil when the backend trains together).
  static func idleGroupWarning(backend: String, trainsTogether: Bool, perJob: Int, ranks: Int)
    -> String?
  {
    guard !trainsTogether else { return nil }
    return "warning: the \(backend) backend trains each model on one rank: --ranks-per-job "
      + "\(perJob) leaves \(perJob - 1) of the \(perJob) ranks of each group idle; without it "
      + "the \(ranks) ranks run \(ranks) jobs at a time"
  }

  /// Under mpirun, every rank as a replica of data-parallel training (on a communicator of
  /// their own); nil in one process.
  static func trainingReplicas() throws -> (any TrainingReplicas)? {
    let world = try Cluster.world()
    guard world.size > 1 else { return nil }
    return ClusterReplicas(communicator: try world.duplicate())
  }

  /// Whether `error` is another rank's failure, or an argument error every rank finds alike,
  /// which rank 0 reports (this rank stays quiet).
  static func isOtherRanksFailure(_ error: any Error, rank: Int) -> Bool {
    switch error {
    case is ValidationError: return rank != 0
    case let error as ClusterError:
      if case .rankFailed(let failed, _, _) = error { return failed != rank }
    case let error as ModelError:
      if case .replicaFailed(let failed, _) = error { return failed != rank }
    case let error as ReplicaFailure:
      return error.rank != rank
    default: break
    }
    return false
  }
}

extension AtsoTransfer {
  /// ArgumentParser's `main()`, with MPI finalized before the process exits. Under mpirun,
  /// error messages carry the rank, and a rank stopped by another rank's failure says nothing
  /// (rank 0 prints that failure).
  static func main() {
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      let label = ScaleOut.label
      guard !label.isEmpty, let world = try? Cluster.world() else {
        Cluster.finalize()
        exit(withError: error)
      }
      // The message before MPI_Finalize, which waits for the other ranks: a rank stopped by
      // this one's failure cannot end the job (mpirun kills the rest) before it is printed.
      if world.rank != 0, ScaleOut.isOtherRanksFailure(error, rank: world.rank) {
        Cluster.finalize(exitCode: 1)
        Foundation.exit(1)
      }
      let message = fullMessage(for: error)
      if !message.isEmpty {
        FileHandle.standardError.write(Data((label + message + "\n").utf8))
      }
      let code = exitCode(for: error).rawValue
      Cluster.finalize(exitCode: code)
      Foundation.exit(code)
    }
    Cluster.finalize()
  }
}

extension FarmEvent {
  /// The event with every rank passed through `rank`.
  func mappingRanks(_ rank: (Int) -> Int) -> FarmEvent {
    switch self {
    case .joined(let r, let host, let processID):
      .joined(rank: rank(r), host: host, processID: processID)
    case .started(let job, let r, let attempt): .started(job: job, rank: rank(r), attempt: attempt)
    case .finished(let job, let r, let seconds): .finished(job: job, rank: rank(r), seconds: seconds)
    case .lost(let r, let job, let seconds): .lost(rank: rank(r), job: job, silentSeconds: seconds)
    case .killedLost(let r, let processID): .killedLost(rank: rank(r), processID: processID)
    case .groupMembersLost: self  // world ranks already
    }
  }
}
