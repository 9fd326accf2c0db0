import Foundation
import Testing
import Tensor

/// Runs `atso-transfer doctor` with `OPENBLAS_CORETYPE` set to `core` (nil: removed) and
/// returns the core in use from its report.
private func doctorCore(_ executable: String, core: String?) throws -> (core: String, line: String) {
  let process = Process()
  process.executableURL = URL(fileURLWithPath: executable)
  process.arguments = ["doctor"]
  var environment = ProcessInfo.processInfo.environment
  environment["OPENBLAS_CORETYPE"] = core
  process.environment = environment
  let pipe = Pipe()
  process.standardOutput = pipe
  try process.run()
  let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  process.waitUntilExit()
  #expect(process.terminationStatus == 0)
  let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("core in use") })
  let value = line.dropFirst("core in use".count).drop { $0 == " " }
  return (String(value.prefix { $0 != " " }), String(line))
}

@Test(
  "doctor in a fresh process: the automatic core is the widest; an override is honoured or rejected",
  .enabled(if: atsoTransferExecutable != nil, "the atso-transfer executable is not built"),
  .enabled(if: BLASLibrary.loaded.isDynamicArch, "OpenBLAS is not a DYNAMIC_ARCH build"))
func doctorReportsCoreSelection() throws {
  let executable = try #require(atsoTransferExecutable)
  let cpu = CPUDescription.current
  let runnable = BLASLibrary.loaded.cores.filter {
    BLASLibrary.canRun(core: $0, features: cpu.features)
  }
  let widest = try #require(runnable.compactMap { BLASLibrary.vectorBits(ofCore: $0) }.max())

  // OPENBLAS_CORETYPE cleared: the toolkit's choice, loaded into OpenBLAS.
  let automatic = try doctorCore(executable, core: nil)
  if widest >= 256 {
    #expect(BLASLibrary.vectorBits(ofCore: automatic.core) == widest, "\(automatic.line)")
    #expect(automatic.line.contains("chosen by atso-transfer"))
  }
  // A runnable core of the user's own wins, even a narrower one.
  if let narrow = runnable.last(where: { BLASLibrary.vectorBits(ofCore: $0) == 128 }) {
    let forced = try doctorCore(executable, core: narrow)
    #expect(forced.core.lowercased() == narrow.lowercased(), "\(forced.line)")
    #expect(forced.line.contains("honoured"))
  }
  // A core this CPU cannot run is never loaded.
  if let impossible = BLASLibrary.knownCores.first(where: {
    !BLASLibrary.canRun(core: $0, features: cpu.features)
  }) {
    let rejected = try doctorCore(executable, core: impossible)
    #expect(rejected.core == automatic.core, "\(rejected.line)")
    #expect(rejected.line.contains("cannot run"))
  }
}
