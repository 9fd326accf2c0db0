import Foundation
import Segmentation
import TestSupport
import Taxonomy
import Testing
@testable import Transfer

/// Reads a PNG written by the run back through Segmentation's libpng decoder.
func readPlot(_ path: String) throws -> RGBImage {
  let data = try #require(FileManager.default.contents(atPath: path), "missing \(path)")
  return try PNGCodec.decodeRGB(Array(data), path: path)
}

@Test("plots are written as LabelColor PNGs that decode to the canvas pixels")
func plotPNGRoundTrip() throws {
  var canvas = PlotCanvas(width: 150, height: 160, color: LabelColor(1, 2, 3))
  canvas.set(x: 149, y: 159, LabelColor(250, 0, 7))
  canvas.set(x: 0, y: 0, LabelColor(9, 8, 7))
  let directory = try makeTemporaryDirectory("png")
  try writePNG(canvas, to: directory + "/plot.png")
  let decoded = try readPlot(directory + "/plot.png")
  #expect(decoded.width == 150 && decoded.height == 160)
  #expect(decoded.pixels == canvas.pixels)
  #expect(!FileManager.default.fileExists(atPath: directory + "/plot.png.partial"))
}

@Test("the curves plot draws the axes, every series color, and text")
func curvesPlot() throws {
  let configuration = TransferConfiguration(seed: 2, folds: 2, generations: 2)
  let (run, _, records) = try runFresh(configuration, name: "plot")
  let table = ResultsTable(records: records, configuration: run.configuration)
  let image = table.curves(stage: "fine", width: 480, height: 300)
  var colors: Set<LabelColor> = []
  for y in 0..<image.height { for x in 0..<image.width { colors.insert(image.pixel(x: x, y: y)) } }
  for color in LinePlot.palette { #expect(colors.contains(color)) }
  #expect(colors.contains(.black) && colors.contains(.white) && colors.contains(.gray))
  // The y axis is a vertical black line at x = 60 through the plot area (where no curve
  // point covers it).
  let axis = (30..<(300 - 45)).filter { image.pixel(x: 60, y: $0) == .black }.count
  #expect(axis > (300 - 45 - 30) * 8 / 10)
  #expect(image.pixel(x: 59, y: 100) == .white)
  let decoded = try readPlot(run.directory + "/curves-fine.png")
  #expect(decoded.width == 640 && decoded.height == 400)
  #expect(decoded.pixels == table.curves(stage: "fine").pixels)
}

@Test("bitmap font: every glyph is 7 rows of 5 columns")
func fontGlyphs() {
  for (character, rows) in BitmapFont.glyphs {
    #expect(rows.count == 7 && rows.allSatisfy { $0.count == 5 }, "glyph \(character)")
  }
  var image = PlotCanvas(width: 20, height: 10)
  #expect(image.text("1%", x: 1, y: 1, .black) == 12)
  #expect(image.pixel(x: 3, y: 1) == .black)  // the top of the "1"
}
