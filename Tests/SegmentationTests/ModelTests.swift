import Tensor
import TestSupport
import Testing

@testable import Segmentation

/// `L = sum(w * logits)` of the model in training mode, as a function of one named tensor.
private func trainingLoss<M: SegmentationModel>(
  _ model: M, images: Tensor, weights: Tensor, name: String, value: Tensor
) -> Double {
  var copy = model
  copy.parameters = [name: value]
  let logits = copy.trainingForward(images).logits
  var s = 0.0
  for i in logits.scalars.indices { s += Double(logits.scalars[i]) * Double(weights.scalars[i]) }
  return s
}

/// Compares analytic gradients with central differences at a few scalars of each named tensor.
///
/// A probe whose central differences at two step sizes disagree sits near a ReLU kink (tiny
/// networks with batch norm have many units near 0); it is skipped and counted. Returns the worst
/// relative error over the probes used and the number of probes used.
private func worstGradientError<M: SegmentationModel>(
  _ model: M, images: Tensor, names: [String], probes: Int, using rng: inout SeededGenerator
) -> (worst: Float, used: Int, total: Int) {
  var m = model
  let (logits, cache) = m.trainingForward(images)
  let weights = Tensor.randomNormal(shape: logits.shape, using: &rng)
  let gradients = model.backward(cache, logitsGradient: weights)
  let parameters = model.parameters
  var worst: Float = 0
  var used = 0
  var total = 0
  func difference(_ tensor: Tensor, _ name: String, _ i: Int, _ epsilon: Float) -> Double {
    var plus = tensor
    plus.scalars[i] += epsilon
    var minus = tensor
    minus.scalars[i] -= epsilon
    return
      (trainingLoss(model, images: images, weights: weights, name: name, value: plus)
      - trainingLoss(model, images: images, weights: weights, name: name, value: minus))
      / (2 * Double(epsilon))
  }
  for name in names {
    guard let tensor = parameters[name], let gradient = gradients[name] else {
      Issue.record("no parameter or gradient named \(name)")
      continue
    }
    #expect(gradient.shape == tensor.shape)
    for _ in 0..<probes {
      let i = Int(rng.next() % UInt64(tensor.count))
      total += 1
      let coarse = difference(tensor, name, i, 4e-3)
      let fine = difference(tensor, name, i, 2e-3)
      if abs(coarse - fine) > 1e-2 * max(1, abs(fine)) { continue }
      used += 1
      let analytic = Double(gradient.scalars[i])
      let error = abs(fine - analytic) / max(1, abs(fine), abs(analytic))
      worst = max(worst, Float(error))
    }
  }
  return (worst, used, total)
}

@Test("the reference U-Net has 488,307 parameters and the documented names")
func referenceUNetSize() {
  var rng = SeededGenerator(seed: 1)
  let model = UNet(using: &rng)
  #expect(model.trainableScalarCount == 488_307)
  let names = model.parameterNames
  #expect(names.first == "enc1.conv1.conv.weight")
  #expect(names.contains("bottleneck.conv2.norm.running_variance"))
  #expect(names.last == "head.bias")
  #expect(Set(names).count == names.count)
  var count = rng
  let logits = model(Tensor.randomNormal(shape: [1, 16, 24, 3], using: &count))
  #expect(logits.shape == [1, 16, 24, 19])
}

@Test("initialisation schemes: PyTorch's uniform bounds and He's standard deviation")
func weightInitialization() throws {
  var rng = SeededGenerator(seed: 2)
  let he = UNet(using: &rng)
  var pytorch = he
  var draw = SeededGenerator(seed: 3)
  pytorch.initialize(.pytorch, using: &draw)
  let before = he.parameters
  let after = pytorch.parameters
  var convolutions = 0
  for (name, tensor) in after {
    let original = try #require(before[name])
    if name.hasSuffix("weight") && tensor.rank == 4 {
      convolutions += 1
      let fanIn = Float(tensor.shape[0] * tensor.shape[1] * tensor.shape[2])
      let bound = 1 / fanIn.squareRoot()
      #expect(tensor.scalars.allSatisfy { abs($0) <= bound }, "\(name)")
      let heStd = (original.scalars.map { Double($0 * $0) }.reduce(0, +)
        / Double(original.count)).squareRoot()
      let std = (tensor.scalars.map { Double($0 * $0) }.reduce(0, +) / Double(tensor.count))
        .squareRoot()
      if tensor.count >= 1000 {
        #expect(abs(std / (Double(bound) / 3.0.squareRoot()) - 1) < 0.1, "\(name): \(std)")
        #expect(abs(heStd / Double((2 / fanIn).squareRoot()) - 1) < 0.1, "\(name): \(heStd)")
      }
    } else if name == "head.bias" {
      #expect(original.scalars.allSatisfy { $0 == 0 })
      #expect(tensor.scalars.contains { $0 != 0 } && tensor.scalars.allSatisfy { abs($0) <= 0.25 })
    } else {
      #expect(tensor == original, "\(name): batch-norm tensors are left alone")
    }
  }
  #expect(convolutions == 15)  // 7 blocks of two 3x3 convolutions and the 1x1 head
  // Seeded: the same generator gives the same weights.
  var again = he
  var same = SeededGenerator(seed: 3)
  again.initialize(.pytorch, using: &same)
  #expect(again.parameters == after)
}

@Test("U-Net gradients match finite differences at spot-checked parameters")
func unetGradients() {
  var rng = SeededGenerator(seed: 2)
  let model = UNet(.init(inputChannels: 3, widths: [3, 4, 5], classCount: 3), using: &rng)
  let images = Tensor.randomNormal(shape: [2, 8, 12, 3], using: &rng)
  let names = [
    "enc1.conv1.conv.weight", "enc1.conv2.norm.scale", "enc2.conv1.conv.weight",
    "bottleneck.conv2.norm.offset", "dec2.conv1.conv.weight", "dec1.conv2.norm.scale",
    "head.weight", "head.bias",
  ]
  let check = worstGradientError(model, images: images, names: names, probes: 3, using: &rng)
  #expect(check.worst < 1e-2, "worst relative error \(check.worst)")
  #expect(
    check.used * 3 >= check.total * 2, "only \(check.used) of \(check.total) probes away from kinks"
  )
  // Every trainable tensor gets a gradient of its own shape, and buffers get none.
  var m = model
  let (logits, cache) = m.trainingForward(images)
  let gradients = model.backward(cache, logitsGradient: logits)
  #expect(Set(gradients.keys) == Set(model.trainableParameterNames))
}

@Test("DeepLab gradients match finite differences at spot-checked parameters")
func deepLabGradients() {
  var rng = SeededGenerator(seed: 3)
  let model = DeepLab(
    .init(
      inputChannels: 3, widths: [3, 4, 4, 5], asppChannels: 3, asppRates: [1, 2], classCount: 3),
    using: &rng)
  let images = Tensor.randomNormal(shape: [2, 16, 24, 3], using: &rng)
  let names = [
    // The first stem units are left out: through two stride-2 units with 3-4 channels and batch
    // norm over few values, central differences at these step sizes are dominated by curvature
    // (they drift with the step size). They run the same ConvBNReLU backward as the U-Net.
    "stem6.norm.scale", "stem6.conv.weight", "stage4.conv1.conv.weight",
    "aspp.pointwise.conv.weight",
    "aspp.atrous2.conv.weight", "aspp.pooling.weight", "aspp.pooling.bias",
    "projection.norm.offset",
    "classifier.weight", "classifier.bias",
  ]
  let check = worstGradientError(model, images: images, names: names, probes: 3, using: &rng)
  #expect(check.worst < 1e-2, "worst relative error \(check.worst)")
  #expect(
    check.used * 3 >= check.total * 2, "only \(check.used) of \(check.total) probes away from kinks"
  )
  var m = model
  let (logits, cache) = m.trainingForward(images)
  #expect(logits.shape == [2, 16, 24, 3])
  let gradients = model.backward(cache, logitsGradient: logits)
  #expect(Set(gradients.keys) == Set(model.trainableParameterNames))
}

@Test("training forward updates the running statistics and inference uses them")
func runningStatistics() {
  var rng = SeededGenerator(seed: 4)
  var model = UNet(.init(widths: [4, 6], classCount: 2), using: &rng)
  let images = Tensor.randomNormal(shape: [2, 8, 8, 3], mean: 3, using: &rng)
  let before = model(images)
  let trained = model.trainingForward(images).logits
  #expect(model.parameters["enc1.conv1.norm.running_mean"]?.scalars.allSatisfy { $0 == 0 } == false)
  #expect(model(images) != before)
  #expect(trained.shape == before.shape)
}
