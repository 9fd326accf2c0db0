import Testing

@testable import Segmentation

@Test("architectures print as one readable line with the parameter count")
func architectureSummary() {
  let unet = ModelArchitecture.unet(configuration: .init())
  #expect(unet.summaryWithParameters == "U-Net widths 16,32,64,128, 3 -> 19 classes, 488,307 parameters")
  let deepLab = ModelArchitecture.deepLab(configuration: .init(classCount: 11))
  #expect(
    deepLab.summary
      == "DeepLab widths 16,32,64,128, ASPP 64 channels at rates 2,4,6, 3 -> 11 classes")
  #expect(!deepLab.summary.contains("Configuration("))
}
