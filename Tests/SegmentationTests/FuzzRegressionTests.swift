import Testing

@testable import Segmentation

/// Inputs found by the libFuzzer harnesses of Fuzz/ (scripts/fuzz.sh) that crashed or broke an
/// invariant, kept as tests (their reproducers are in Fuzz/Corpus/<harness>/regression-*).
@Suite("fuzz findings (Segmentation)")
struct FuzzRegressionTests {
  @Test(
    "FuzzDatasetSpec: an option without a name or without values is an error, not a trap",
    arguments: ["camvid:x?=", "camvid:x?&=&", "camvid:x?=a", "camvid:x?include=", "camvid:x?exclude=,"])
  func emptyOptions(_ text: String) {
    #expect(throws: DatasetError.self) { try DatasetSpec(parsing: text) }
  }
}
