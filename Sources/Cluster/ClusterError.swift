/// The errors of the Cluster module: MPI calls, lost ranks, and runs stopped by a rank's failure.
///
/// Every case names the rank (and the job, where there is one), so that rank 0 can print it as
/// is (`description`).
public enum ClusterError: Error, Equatable, CustomStringConvertible {
  /// An MPI call returned an error code (the communicator returns errors instead of aborting).
  case mpi(call: String, code: Int, message: String)
  /// A rank failed; the whole run stopped. `job` is nil for a failure outside a job (opening
  /// the work, a collective of data-parallel training).
  case rankFailed(rank: Int, job: String?, message: String)
  /// A job was running on `attempts` ranks that were each lost (died or stopped answering).
  case jobLostTooOften(job: String, attempts: Int)
  /// Every rank but rank 0 is lost and rank 0 does not run jobs.
  case noRanksLeft(pending: Int)
  /// Rank 0 (the leader) stopped answering for longer than the timeout.
  case leaderLost(rank: Int, seconds: Double)
  /// No message arrived from `rank` within the timeout of a collective.
  case timedOut(rank: Int, operation: String, seconds: Double)
  /// The job graph cannot be finished: a dependency that is no job, or a cycle.
  case unsatisfiableJobs(blocked: [String], reason: String)
  /// Ranks contributed buffers of different lengths to one reduction.
  case mismatchedReduction(rank: Int, expected: Int, received: Int)
  /// A message did not have the expected layout (a different program version on some rank).
  case malformedMessage(rank: Int, tag: Int, reason: String)

  public var description: String {
    switch self {
    case .mpi(let call, let code, let message):
      "\(call) failed (MPI error \(code)): \(message)"
    case .rankFailed(let rank, let job, let message):
      if let job { "rank \(rank), job \(job): \(message)" } else { "rank \(rank): \(message)" }
    case .jobLostTooOften(let job, let attempts):
      "job \(job) was lost with \(attempts) ranks that died or stopped answering; "
        + "giving up (a job that kills its rank, e.g. out of memory?)"
    case .noRanksLeft(let pending):
      "every worker rank is lost and \(pending) jobs remain"
    case .leaderLost(let rank, let seconds):
      "rank \(rank): rank 0 sent nothing for \(Int(seconds)) s; stopping"
    case .timedOut(let rank, let operation, let seconds):
      "\(operation): nothing from rank \(rank) for \(Int(seconds)) s"
    case .unsatisfiableJobs(let blocked, let reason):
      "\(blocked.count) jobs can never run (first: \(blocked.first ?? "?")): \(reason)"
    case .mismatchedReduction(let rank, let expected, let received):
      "reduction: rank \(rank) contributed \(received) values, expected \(expected)"
    case .malformedMessage(let rank, let tag, let reason):
      "malformed message from rank \(rank) (tag \(tag)): \(reason); "
        + "do all ranks run the same atso-transfer build?"
    }
  }
}
