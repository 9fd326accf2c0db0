import Foundation
import Tensor
import TestSupport
import Testing

@Test("SGD with momentum and weight decay matches hand-computed PyTorch updates")
func sgdUpdates() {
  var parameters = [
    "w": Tensor(shape: [2], scalars: [1, 2]), "buffer": Tensor(shape: [1], scalars: [7]),
  ]
  let gradients = ["w": Tensor(shape: [2], scalars: [0.5, -1])]
  var sgd = SGD(momentum: 0.9, weightDecay: 0.01)
  // Step 1: g = [0.51, -0.98], v = g, p = p - 0.1 v.
  sgd.update(&parameters, gradients: gradients, learningRate: 0.1)
  #expect(
    parameters["w"]?.isClose(
      to: Tensor(shape: [2], scalars: [0.949, 2.098]), relativeTolerance: 1e-6) == true)
  // Step 2: g = [0.50949, -0.97902], v = 0.9 [0.51, -0.98] + g = [0.96849, -1.86102].
  sgd.update(&parameters, gradients: gradients, learningRate: 0.1)
  #expect(
    parameters["w"]?.isClose(
      to: Tensor(shape: [2], scalars: [0.852151, 2.284102]), relativeTolerance: 1e-6) == true)
  #expect(
    sgd.velocity["w"]?.isClose(
      to: Tensor(shape: [2], scalars: [0.96849, -1.86102]), relativeTolerance: 1e-6) == true)
  #expect(parameters["buffer"]?.scalars == [7])
  // Plain SGD without momentum keeps no state.
  var plain = SGD(momentum: 0)
  var p = ["w": Tensor(shape: [1], scalars: [1])]
  plain.update(&p, gradients: ["w": Tensor(shape: [1], scalars: [2])], learningRate: 0.5)
  #expect(p["w"]?.scalars == [0] && plain.velocity.isEmpty)
}

@Test("Adam matches hand-computed PyTorch updates")
func adamUpdates() {
  var parameters = ["w": Tensor(shape: [1], scalars: [1])]
  var adam = Adam()
  adam.update(&parameters, gradients: ["w": Tensor(shape: [1], scalars: [0.5])], learningRate: 0.1)
  #expect(abs((parameters["w"]?.scalars[0] ?? 0) - 0.9) < 1e-6)
  adam.update(
    &parameters, gradients: ["w": Tensor(shape: [1], scalars: [-0.25])], learningRate: 0.1)
  // m = 0.02, v = 0.00031225, p = 0.9 - 0.1 (m / 0.19) / (sqrt(v / (1 - 0.999^2)) + 1e-8).
  #expect(abs((parameters["w"]?.scalars[0] ?? 0) - 0.8733663) < 1e-6)
  #expect(adam.step == 2)
}

@Test("the poly schedule follows base * (1 - step / total)^0.9")
func polySchedule() {
  let schedule = PolySchedule(baseLearningRate: 0.01, totalSteps: 100)
  #expect(schedule.learningRate(atStep: 0) == 0.01)
  #expect(abs(schedule.learningRate(atStep: 10) - 0.0090953258) < 1e-9)
  #expect(abs(schedule.learningRate(atStep: 99) - 0.00015848932) < 1e-10)
  #expect(schedule.learningRate(atStep: 100) == 0)
}

@Test("optimizer state survives a JSON round trip bit for bit")
func optimizerStateIsCodable() throws {
  var rng = SeededGenerator(seed: 9)
  var parameters = ["a": Tensor.randomNormal(shape: [3, 4], using: &rng)]
  let gradients = ["a": Tensor.randomNormal(shape: [3, 4], using: &rng)]
  var sgd = SGD(momentum: 0.9, weightDecay: 1e-4)
  var adam = Adam(weightDecay: 1e-3)
  sgd.update(&parameters, gradients: gradients, learningRate: 0.1)
  adam.update(&parameters, gradients: gradients, learningRate: 0.1)
  let sgdCopy = try JSONDecoder().decode(SGD.self, from: JSONEncoder().encode(sgd))
  let adamCopy = try JSONDecoder().decode(Adam.self, from: JSONEncoder().encode(adam))
  #expect(sgdCopy == sgd)
  #expect(adamCopy == adam)
  #expect(throws: DecodingError.self) {
    try JSONDecoder().decode(Tensor.self, from: Data(#"{"shape":[2],"data":"AAAA"}"#.utf8))
  }
}
