// Times one training step (forward, loss, backward, SGD) and one inference batch of the
// reference U-Net (REFERENCE_NET.md), in the shape of /work/shared/bench/torch_reference_unet.py.
//
// Usage: swift run -c release UNetBench [--res 96x128] [--batch 8] [--threads 2] [--steps 10]
//                                       [--warmup 2] [--mode train|infer|both]
// Prints human lines on stderr and one `RESULT {json}` line on stdout. Times are medians.

import Foundation
import Segmentation
import Tensor

struct Options {
  var height = 96
  var width = 128
  var batch = 8
  var threads = 2
  var steps = 10
  var warmup = 2
  var mode = "both"
  var fmaPeak = false
}

func parseOptions() -> Options? {
  var options = Options()
  var arguments = CommandLine.arguments.dropFirst()
  while let flag = arguments.popFirst() {
    guard let value = arguments.popFirst() else { return nil }
    switch flag {
    case "--res":
      let parts = value.lowercased().split(separator: "x").compactMap { Int($0) }
      guard parts.count == 2 else { return nil }
      (options.height, options.width) = (parts[0], parts[1])
    case "--batch":
      guard let v = Int(value) else { return nil }
      options.batch = v
    case "--threads":
      guard let v = Int(value) else { return nil }
      options.threads = v
    case "--steps":
      guard let v = Int(value) else { return nil }
      options.steps = v
    case "--warmup":
      guard let v = Int(value) else { return nil }
      options.warmup = v
    case "--mode": options.mode = value
    case "--fma-peak":
      guard let v = Int(value) else { return nil }
      (options.fmaPeak, options.threads) = (true, v)
    default: return nil
    }
  }
  guard options.height % 8 == 0, options.width % 8 == 0, options.batch > 0, options.steps > 0,
    ["train", "infer", "both"].contains(options.mode)
  else { return nil }
  return options
}

/// Forward FLOPs of the U-Net's convolutions per image: 2 x multiply-adds.
func forwardConvolutionFLOPs(_ configuration: UNet.Configuration, height: Int, width: Int) -> Double
{
  let w = configuration.widths
  let depth = w.count - 1
  var flops = 0.0
  func conv(_ cin: Int, _ cout: Int, _ kernel: Int, _ h: Int, _ wd: Int) {
    flops += 2 * Double(h * wd * cout * cin * kernel * kernel)
  }
  var channels = configuration.inputChannels
  for i in 0...depth {
    let (h, wd) = (height >> i, width >> i)
    conv(channels, w[i], 3, h, wd)
    conv(w[i], w[i], 3, h, wd)
    channels = w[i]
  }
  for i in 0..<depth {
    let (h, wd) = (height >> i, width >> i)
    conv(w[i + 1] + w[i], w[i], 3, h, wd)
    conv(w[i], w[i], 3, h, wd)
  }
  conv(w[0], configuration.classCount, 1, height, width)
  return flops
}

func median(_ values: [Double]) -> Double {
  let sorted = values.sorted()
  let mid = sorted.count / 2
  return sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// CPU seconds used by the whole process (all threads): a figure that other processes on the
/// machine disturb much less than wall-clock time.
func cpuTime() -> Double {
  var t = timespec()
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
  return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// The peak resident set size of this process so far, in MiB.
func peakResidentMiB() -> Double {
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  return Double(usage.ru_maxrss) / 1024
}

func log(_ text: String) { FileHandle.standardError.write(Data((text + "\n").utf8)) }

guard let options = parseOptions() else {
  log(
    "usage: UNetBench [--res HxW] [--batch N] [--threads T] [--steps S] [--warmup W] [--mode train|infer|both]"
  )
  exit(2)
}
BLASThreads.set(options.threads)
if options.fmaPeak {
  // The machine's FMA limit on this many threads, measured now (beside the step timings).
  let isa = KernelISA.best
  log("# " + BLASLibrary.loaded.summary + ", vector kernels " + isa.rawValue)
  let peak = isa.fmaPeak(threads: options.threads, seconds: 0.5) ?? 0
  log(String(format: "FMA limit: %.1f GFLOP/s on %d threads (%@)", peak, options.threads, isa.rawValue))
  print("RESULT {\"fma_gflops\": \(peak), \"threads\": \(options.threads), \"isa\": \"\(isa.rawValue)\"}")
  exit(0)
}
var rng = SeededGenerator(seed: 0)
let configuration = UNet.Configuration()
let model = UNet(configuration, using: &rng)
let images = Tensor.randomNormal(
  shape: [options.batch, options.height, options.width, 3], using: &rng)
let pixels = options.batch * options.height * options.width
let labels = (0..<pixels).map { _ -> UInt8 in
  rng.nextUniform() < 0.05 ? 255 : UInt8(rng.next() % 19)
}
let batch = Batch(images: images, labels: labels)
let forwardFLOPs = forwardConvolutionFLOPs(
  configuration, height: options.height, width: options.width)
var result: [String: Any] = [
  "impl": "atso-transfer", "res": "\(options.height)x\(options.width)", "batch": options.batch,
  "threads": BLASThreads.count, "steps": options.steps, "warmup": options.warmup,
  "params": model.trainableScalarCount, "fwd_gflop_per_img": forwardFLOPs * 1e-9,
  "openblas_coretype": BLASLibrary.loaded.userCore ?? "unset",
  "blas_core": BLASLibrary.loaded.core, "blas": BLASLibrary.loaded.summary,
]
log("# " + BLASLibrary.loaded.summary + ", vector kernels " + KernelISA.best.rawValue)

if options.mode != "infer" {
  var trainer = Trainer(
    model: model,
    configuration: TrainerConfiguration(
      ignoreIndex: .standard,
      schedule: PolySchedule(baseLearningRate: 0.01, totalSteps: 1_000_000, power: 0),
      optimizer: .sgd(SGD(momentum: 0.9)), classSetName: "bench-19"),
    generator: rng)
  var times: [Double] = []
  var cpuTimes: [Double] = []
  var convTimes: [Double] = []
  var loss: Float = 0
  for i in 0..<(options.warmup + options.steps) {
    let start = now()
    let cpuStart = cpuTime()
    let convStart = ConvolutionClock.seconds
    do { loss = try trainer.trainStep(batch).loss } catch {
      log("training step failed: \(error)")
      exit(1)
    }
    let elapsed = now() - start
    if i >= options.warmup {
      times.append(elapsed)
      cpuTimes.append(cpuTime() - cpuStart)
      convTimes.append(ConvolutionClock.seconds - convStart)
    }
  }
  let t = median(times)
  result["train_cpu_s"] = (median(cpuTimes) * 1e5).rounded() / 1e5
  // Wall time inside the convolution kernels (summed over the calls of one step, which run
  // one after the other, each on all threads).
  result["train_conv_s"] = (median(convTimes) * 1e5).rounded() / 1e5
  let convSeconds: Double = median(convTimes)
  let convRate: Double = 3 * forwardFLOPs * Double(options.batch) / convSeconds * 1e-9
  result["train_conv_gflops"] = (convRate * 100).rounded() / 100
  result["train_maxrss_mib"] = (peakResidentMiB() * 10).rounded() / 10
  result["train_s"] = (t * 1e5).rounded() / 1e5
  result["train_s_minmax"] = [times.min() ?? 0, times.max() ?? 0]
  result["train_img_per_s"] = (Double(options.batch) / t * 1e3).rounded() / 1e3
  let gflops: Double = 3 * forwardFLOPs * Double(options.batch) / t * 1e-9
  result["train_gflops"] = (gflops * 100).rounded() / 100
  result["final_loss"] = Double(loss)
  let trainRate: Double = Double(options.batch) / t
  let trainGFLOPs: Double = 3 * forwardFLOPs * trainRate * 1e-9
  log(
    String(
      format: "train: %.1f ms/step (CPU %.1f ms), %.2f img/s, %.1f GFLOP/s (loss %.4f), peak RSS %.0f MiB",
      t * 1e3, median(cpuTimes) * 1e3, trainRate, trainGFLOPs, Double(loss), peakResidentMiB()))
}
if options.mode != "train" {
  var times: [Double] = []
  var cpuTimes: [Double] = []
  for i in 0..<(options.warmup + options.steps) {
    let start = now()
    let cpuStart = cpuTime()
    let logits = model(images)
    let elapsed = now() - start
    precondition(logits.shape[3] == 19)
    if i >= options.warmup {
      times.append(elapsed)
      cpuTimes.append(cpuTime() - cpuStart)
    }
  }
  let t = median(times)
  result["infer_cpu_s"] = (median(cpuTimes) * 1e5).rounded() / 1e5
  result["infer_s"] = (t * 1e5).rounded() / 1e5
  result["infer_s_minmax"] = [times.min() ?? 0, times.max() ?? 0]
  result["infer_img_per_s"] = (Double(options.batch) / t * 1e3).rounded() / 1e3
  let gflops: Double = forwardFLOPs * Double(options.batch) / t * 1e-9
  result["infer_gflops"] = (gflops * 100).rounded() / 100
  let inferRate: Double = Double(options.batch) / t
  let inferGFLOPs: Double = forwardFLOPs * inferRate * 1e-9
  log(
    String(
      format: "infer: %.1f ms/batch (CPU %.1f ms), %.2f img/s, %.1f GFLOP/s", t * 1e3,
      median(cpuTimes) * 1e3, inferRate, inferGFLOPs))
}
result["maxrss_mib"] = (peakResidentMiB() * 10).rounded() / 10
let json = (try? JSONSerialization.data(withJSONObject: result, options: [.sortedKeys])) ?? Data()
print("RESULT " + String(decoding: json, as: UTF8.self))
