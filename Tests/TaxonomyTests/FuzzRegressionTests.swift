import Testing

@testable import Taxonomy

/// Inputs found by the libFuzzer harnesses of Fuzz/ (scripts/fuzz.sh), kept as tests (their
/// reproducers are in Fuzz/Corpus/<harness>/regression-*).
@Suite("fuzz findings (Taxonomy)")
struct TaxonomyFuzzRegressionTests {
  @Test("FuzzClassSet: a class set without classes is refused (a network needs a class)")
  func noClasses() {
    let text = #"{"kind": "class-set", "version": 1, "name": "none", "classes": []}"#
    #expect(
      throws: TaxonomyError.invalidValue(
        file: "x.json", entry: "classes", value: "[]",
        reason: "a class set needs at least one class")
    ) { try ClassSet(jsonText: text, file: "x.json") }
  }
}
