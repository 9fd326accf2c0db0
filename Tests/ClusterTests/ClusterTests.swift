import Foundation
import Testing

@testable import Cluster

/// Without mpirun, the world is one process that never calls MPI.
@Suite("Cluster in one process")
struct SingleProcessTests {
  struct Boom: Error, CustomStringConvertible { var description: String { "boom" } }

  @Test("the world of a process not started by mpirun is one rank; collectives return the input")
  func singleWorld() throws {
    #expect(!Cluster.isLaunchedByMPI)
    let world = try Cluster.world()
    #expect(world.rank == 0 && world.size == 1 && world.isSingleProcess)
    #expect(try world.sum([1.5, -2, 3] as [Float]) == [1.5, -2, 3])
    #expect(try world.broadcast(Array("x".utf8)) == Array("x".utf8))
    try world.barrier()
    #expect(throws: Boom.self) { try world.fail(Boom()) }
  }

  @Test("messages read back what was written, and a short message is refused by name")
  func wire() throws {
    var writer = ByteWriter()
    writer.append(UInt8(7))
    writer.append(-42)
    writer.append(0.25)
    writer.append("fold k=2 é")
    writer.append(bytes: [1, 2, 3])
    writer.appendRemainder([9, 9])
    var reader = ByteReader(bytes: writer.bytes, source: 3, tag: 5)
    #expect(try reader.uint8() == 7)
    #expect(try reader.int() == -42)
    #expect(try reader.double() == 0.25)
    #expect(try reader.string() == "fold k=2 é")
    #expect(try reader.bytesWithLength() == [1, 2, 3])
    #expect(reader.remainder() == [9, 9])
    var short = ByteReader(bytes: [1, 2], source: 3, tag: 5)
    #expect(
      throws: ClusterError.malformedMessage(
        rank: 3, tag: 5, reason: "needs 8 bytes at offset 0 of 2")
    ) { try short.int() }
  }

  /// A diamond: a -> (b, c) -> d, plus e depending on nothing.
  func diamond(_ payload: String = "") -> [FarmJob] {
    [
      FarmJob(id: "a"), FarmJob(id: "b", dependencies: ["a"]),
      FarmJob(id: "c", dependencies: ["a"]), FarmJob(id: "d", dependencies: ["b", "c"]),
      FarmJob(id: "e"),
    ]
  }

  @Test("a farm of one rank runs every job after its dependencies and skips completed ones")
  func farmOrder() throws {
    let farm = try JobFarm(communicator: try Cluster.world())
    let log = LockedLog()
    var finished: [String] = []
    try farm.run(
      start: [], jobs: diamond(), completed: ["e"],
      execute: { job in
        log.append(job.id)
        return Array(job.id.uppercased().utf8)
      },
      complete: { job, result in
        #expect(result == Array(job.id.uppercased().utf8))
        finished.append(job.id)
      },
      event: { _ in })
    #expect(finished == ["a", "b", "c", "d"])
    #expect(log.lines == ["a", "b", "c", "d"])
  }

  @Test("a job that throws stops the farm with rank 0's error naming the job")
  func farmFailure() throws {
    let farm = try JobFarm(communicator: try Cluster.world())
    #expect(throws: ClusterError.rankFailed(rank: 0, job: "c", message: "boom")) {
      try farm.run(
        start: [], jobs: diamond(),
        execute: { job in if job.id == "c" { throw Boom() } else { return [] } },
        complete: { _, _ in }, event: { _ in })
    }
  }

  @Test("a graph that cannot finish is refused: unknown dependency, cycle")
  func farmGraphErrors() throws {
    let farm = try JobFarm(communicator: try Cluster.world())
    #expect(
      throws: ClusterError.unsatisfiableJobs(
        blocked: ["x"], reason: "a dependency is not a job of the graph")
    ) {
      try farm.run(
        start: [], jobs: [FarmJob(id: "x", dependencies: ["nowhere"])], execute: { _ in [] },
        complete: { _, _ in }, event: { _ in })
    }
    #expect(
      throws: ClusterError.unsatisfiableJobs(
        blocked: ["x", "y"], reason: "the dependencies form a cycle")
    ) {
      try farm.run(
        start: [],
        jobs: [FarmJob(id: "x", dependencies: ["y"]), FarmJob(id: "y", dependencies: ["x"])],
        execute: { _ in [] }, complete: { _, _ in }, event: { _ in })
    }
  }
}

/// Lines appended from job threads.
final class LockedLog: @unchecked Sendable {
  private let lock = NSLock()
  private var storage: [String] = []
  func append(_ line: String) { lock.withLock { storage.append(line) } }
  var lines: [String] { lock.withLock { storage } }
}
