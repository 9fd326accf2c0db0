import ArgumentParser
import Cluster
import Foundation
import Transfer

/// Options of the commands that run on many ranks under `mpirun` (ignored in one process).
struct RankOptions: ParsableArguments {
  @Option(
    help: ArgumentHelp(
      "Under mpirun: a rank silent this long (seconds) is lost and its job runs elsewhere.",
      valueName: "seconds"))
  var rankTimeout: Double = 60

  func validate() throws {
    guard rankTimeout.isFinite, rankTimeout >= 1 else {
      throw ValidationError("--rank-timeout must be at least 1 second, got \(rankTimeout)")
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

  /// Prints rank 0's view of the farm.
  static func print(_ event: FarmEvent) {
    switch event {
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
    let farm = try JobFarm(communicator: world, options: options.farmOptions)
    if world.rank == 0 {
      let run: TransferRun
      do {
        run = try rankZero()
      } catch {
        farm.stop(failure: error)
        throw error
      }
      log("running on \(world.size) ranks")
      try run.execute(on: farm, event: print)
      return true
    }
    try TransferRun.serve(farm: farm) { directory in try TransferRun.open(directory) }
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
      let world = try? Cluster.world()
      Cluster.finalize()
      guard !label.isEmpty, let world else { exit(withError: error) }
      if case .rankFailed(let rank, _, _) = error as? ClusterError, rank != world.rank,
        world.rank != 0
      {
        Foundation.exit(1)
      }
      let message = fullMessage(for: error)
      if !message.isEmpty {
        FileHandle.standardError.write(Data((label + message + "\n").utf8))
      }
      Foundation.exit(exitCode(for: error).rawValue)
    }
    Cluster.finalize()
  }
}
