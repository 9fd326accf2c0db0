// The floor of label-map evaluation: only decoding the PNG files (libpng, through the same
// `LabelFileReader` that `atso-transfer evaluate` uses, buffers reused), on N threads, nothing
// else.
//
//   swift run -c release DecodeFloor --threads 2 FILE...      (or a list file with --list FILE)
//
// Prints the wall time, files/s and Mpixel/s. scripts/bench_evaluate.sh runs it beside
// `atso-transfer evaluate` and cityscapesscripts on the same files.
import Dispatch
import Foundation
import Synchronization
import Segmentation

var threads = 2
var files: [String] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
  switch argument {
  case "--threads":
    guard let value = arguments.popFirst(), let n = Int(value), n > 0 else {
      FileHandle.standardError.write(Data("--threads needs a positive number\n".utf8))
      exit(2)
    }
    threads = n
  case "--list":
    guard let path = arguments.popFirst(), let text = try? String(contentsOfFile: path, encoding: .utf8)
    else {
      FileHandle.standardError.write(Data("--list needs a readable file\n".utf8))
      exit(2)
    }
    files += text.split(whereSeparator: \.isWhitespace).map(String.init)
  default:
    files.append(argument)
  }
}
guard !files.isEmpty else {
  FileHandle.standardError.write(Data("usage: DecodeFloor [--threads N] [--list FILE] FILE...\n".utf8))
  exit(2)
}

final class Totals: @unchecked Sendable {
  let lock = NSLock()
  var pixels = 0
  var failures: [String] = []
}
let totals = Totals()
let paths = files
let threadCount = threads
let start = DispatchTime.now().uptimeNanoseconds
let next = Atomic<Int>(0)
DispatchQueue.concurrentPerform(iterations: threadCount) { _ in
  var pixels = 0
  var failures: [String] = []
  // The reader `atso-transfer evaluate` uses, with the same buffer reuse.
  var reader = LabelFileReader()
  var label = LabelImage(width: 0, height: 0, values: [])
  // The next file as soon as a worker is free, as `atso-transfer evaluate` takes its pairs.
  while case let i = next.add(1, ordering: .relaxed).oldValue, i < paths.count {
    do {
      try reader.read(at: paths[i], into: &label)
      pixels += label.values.count
    } catch {
      failures.append("\(error)")
    }
  }
  totals.lock.lock()
  totals.pixels += pixels
  totals.failures += failures
  totals.lock.unlock()
}
let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
for failure in totals.failures { FileHandle.standardError.write(Data("\(failure)\n".utf8)) }
let line = String(
  format: "decode-floor: %d files, %d threads, %.3f s, %.1f files/s, %.0f Mpixel/s",
  paths.count, threads, seconds, Double(paths.count) / seconds, Double(totals.pixels) / seconds / 1e6)
print(line)
print("RESULT {\"seconds\": \(seconds), \"files\": \(paths.count), \"threads\": \(threads)}")
exit(totals.failures.isEmpty ? 0 : 1)
