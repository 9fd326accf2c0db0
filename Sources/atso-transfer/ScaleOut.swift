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

/// The ranks of a communicator as the replicas of data-parallel training.
struct ClusterReplicas: TrainingReplicas {
  let communicator: Communicator

  var index: Int { communicator.rank }
  var count: Int { communicator.size }

  func sum(_ values: [Float]) throws(ReplicaFailure) -> [Float] {
    do { return try communicator.sum(values) } catch { throw failure(error) }
  }

  func sum(_ values: [Double]) throws(ReplicaFailure) -> [Double] {
    do { return try communicator.sum(values) } catch { throw failure(error) }
  }

  func fail(_ error: any Error) throws(ReplicaFailure) -> Never {
    do { try communicator.fail(error) } catch { throw failure(error) }
  }

  /// A communicator's error as the failure of the rank it names (this rank's otherwise).
  func failure(_ error: any Error) -> ReplicaFailure {
    if case .rankFailed(let rank, _, let message) = error as? ClusterError {
      return ReplicaFailure(rank: rank, message: message)
    }
    return ReplicaFailure(rank: communicator.rank, message: String(describing: error))
  }
}

extension ScaleOut {
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
        Cluster.finalize()
        Foundation.exit(1)
      }
      let message = fullMessage(for: error)
      if !message.isEmpty {
        FileHandle.standardError.write(Data((label + message + "\n").utf8))
      }
      Cluster.finalize()
      Foundation.exit(exitCode(for: error).rawValue)
    }
    Cluster.finalize()
  }
}
