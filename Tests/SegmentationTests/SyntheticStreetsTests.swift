import Foundation
import Testing
@testable import Segmentation

@Suite struct SyntheticStreetsTests {
  @Test(arguments: SyntheticStreets.Domain.allCases)
  func scenesAreReproducibleAndIndependentOfOrder(_ domain: SyntheticStreets.Domain) {
    let a = SyntheticStreets.scene(domain: domain, index: 3, seed: 9, width: 64, height: 32)
    _ = SyntheticStreets.scene(domain: domain, index: 4, seed: 9, width: 64, height: 32)
    let b = SyntheticStreets.scene(domain: domain, index: 3, seed: 9, width: 64, height: 32)
    #expect(a.rgb == b.rgb)
    #expect(a.labels == b.labels)
    let c = SyntheticStreets.scene(domain: domain, index: 5, seed: 9, width: 64, height: 32)
    #expect(a.labels != c.labels)
  }

  @Test func domainsUseTheirNativeLabelIds() {
    let s = SyntheticStreets.scene(domain: .source, index: 0, seed: 1, width: 96, height: 48)
    let t = SyntheticStreets.scene(domain: .target, index: 0, seed: 1, width: 96, height: 48)
    // Cityscapes labelIds: road 7, sky 23; Mapillary v1.2: road 13, sky 27.
    #expect(s.labels.contains(7) && s.labels.contains(23))
    #expect(t.labels.contains(13) && t.labels.contains(27))
    #expect(Set(s.labels).isSubset(of: Set(0...33)))
    #expect(Set(t.labels).isSubset(of: Set(0...65)))
  }

  @Test func targetIsDarkerThanSource() {
    func meanBrightness(_ domain: SyntheticStreets.Domain) -> Double {
      var total = 0.0
      for i in 0..<8 {
        let s = SyntheticStreets.scene(domain: domain, index: i, seed: 2, width: 64, height: 32)
        total += Double(s.rgb.reduce(0) { $0 + Int($1) }) / Double(s.rgb.count)
      }
      return total / 8
    }
    #expect(meanBrightness(.target) < 0.75 * meanBrightness(.source))
  }

  @Test func everyElementHasLabelsInBothDomains() {
    for e in SyntheticStreets.Element.allCases {
      #expect(SyntheticStreets.cityscapesLabelId(e) <= 33)
      #expect(SyntheticStreets.mapillaryId(e) <= 65)
    }
    // Distinct elements that Cityscapes also distinguishes keep distinct ids.
    #expect(SyntheticStreets.cityscapesLabelId(.car) != SyntheticStreets.cityscapesLabelId(.truck))
  }
}
