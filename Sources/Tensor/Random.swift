#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A seeded, reproducible random number generator (xoshiro256**, seeded by SplitMix64).
///
/// There is no global generator in the project: whoever needs randomness receives one `inout`, so
/// the same seed gives the same numbers. The state is four public words so that it can be stored
/// in a checkpoint and restored exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable, Equatable, Codable {
  public var state: [UInt64]

  /// Creates a generator whose sequence is fully determined by `seed`.
  public init(seed: UInt64) {
    var s = seed
    func splitMix() -> UInt64 {
      s &+= 0x9E37_79B9_7F4A_7C15
      var z = s
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
    state = [splitMix(), splitMix(), splitMix(), splitMix()]
  }

  /// Restores a generator from a saved `state`.
  ///
  /// - Precondition: `state.count == 4`.
  public init(state: [UInt64]) {
    precondition(state.count == 4, "a SeededGenerator state has 4 words")
    self.state = state
  }

  public mutating func next() -> UInt64 {
    let result = rotl(state[1] &* 5, 7) &* 9
    let t = state[1] << 17
    state[2] ^= state[0]
    state[3] ^= state[1]
    state[1] ^= state[2]
    state[0] ^= state[3]
    state[2] ^= t
    state[3] = rotl(state[3], 45)
    return result
  }

  @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 {
    (x << k) | (x >> (64 - k))
  }

  /// A uniform `Float` in `[0, 1)`.
  public mutating func nextUniform() -> Float {
    Float(next() >> 40) * (1.0 / Float(1 << 24))
  }

  /// A standard normal sample (Box-Muller).
  public mutating func nextNormal() -> Float {
    var u1 = nextUniform()
    while u1 <= 0 { u1 = nextUniform() }
    let u2 = nextUniform()
    return (-2 * log(u1)).squareRoot() * cos(2 * Float.pi * u2)
  }

  /// Derives an independent generator, e.g. one per worker or per epoch.
  public mutating func split() -> SeededGenerator { SeededGenerator(seed: next()) }
}

extension Tensor {
  /// A tensor of independent normal samples with the given mean and standard deviation.
  public static func randomNormal(
    shape: [Int], mean: Float = 0, standardDeviation: Float = 1,
    using generator: inout SeededGenerator
  ) -> Tensor {
    var t = Tensor(repeating: 0, shape: shape)
    for i in t.scalars.indices { t.scalars[i] = mean + standardDeviation * generator.nextNormal() }
    return t
  }

  /// A tensor of independent uniform samples in `[lower, upper)`.
  public static func randomUniform(
    shape: [Int], lower: Float = 0, upper: Float = 1, using generator: inout SeededGenerator
  ) -> Tensor {
    var t = Tensor(repeating: 0, shape: shape)
    for i in t.scalars.indices { t.scalars[i] = lower + (upper - lower) * generator.nextUniform() }
    return t
  }
}
