import Foundation
import Segmentation
import Taxonomy
import TestSupport
import Testing

@testable import Transfer

/// Reads a PNG written by the run back through Segmentation's libpng decoder.
func readPlot(_ path: String) throws -> RGBImage {
  let data = try #require(FileManager.default.contents(atPath: path), "missing \(path)")
  return try PNGCodec.decodeRGB(Array(data), path: path)
}

/// The number of pixels of `color` in the rectangle `[x0, x1) x [y0, y1)`.
func count(_ color: LabelColor, in image: PlotCanvas, x: Range<Int>, y: Range<Int>) -> Int {
  var n = 0
  for row in y { for column in x where image.pixel(x: column, y: row) == color { n += 1 } }
  return n
}

@Test("plots are written as RGB PNGs that decode to the canvas pixels")
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

@Test("the curves plot draws the axes, every schedule's color, and names metric and data")
func curvesPlot() throws {
  var configuration = TransferConfiguration(seed: 2, folds: 2, generations: 2)
  var options = TestOptions(source: "camvid:/d/train.txt")
  options.test = "camvid:/data/camvid/train.txt?include=0001TP"
  configuration.backend = options
  let (run, _, records) = try runFresh(configuration, name: "plot")
  let table = ResultsTable(records: records, configuration: run.configuration)
  let plot = table.curvesPlot(stage: "fine", dataset: LinePlot.datasetLine(configuration.backend))
  #expect(plot.title == "Mean IoU (%) per generation")
  #expect(plot.yLabel == "mean IoU (%)")
  #expect(
    plot.subtitle
      == "stage fine, level fine; S camvid:train.txt, E camvid:train.txt?include=0001TP")
  #expect(plot.series.map(\.label).contains("self-learning labels @R"))
  let image = plot.render(width: 480, height: 300)
  var colors: Set<LabelColor> = []
  for y in 0..<image.height { for x in 0..<image.width { colors.insert(image.pixel(x: x, y: y)) } }
  for color in LinePlot.palette { #expect(colors.contains(color)) }
  #expect(colors.contains(.black) && colors.contains(.white) && colors.contains(.gray))
  // The y axis: a vertical black line at x = 62 through the plot area, white left of it.
  let top = 38 + 14
  let axis = (top..<(300 - 48)).filter { image.pixel(x: 62, y: $0) == .black }.count
  #expect(axis > (300 - 48 - top) * 8 / 10)
  #expect(image.pixel(x: 61, y: 120) == .white)
  // The run wrote the same picture, with the data sets of its configuration.
  let decoded = try readPlot(run.directory + "/curves-fine.png")
  #expect(decoded.width == 640 && decoded.height == 400)
  let expected = table.curves(stage: "fine", dataset: LinePlot.datasetLine(configuration.backend))
  #expect(decoded.pixels == expected.pixels)
}

@Test("coinciding series stay visible: the wider, earlier line shows on both sides")
func overlappingSeries() {
  let points: [(x: Double, y: Double)] = [(0, 10), (1, 20), (2, 20)]
  let series = LinePlot.scheduleStyles.enumerated().map { i, style in
    LinePlot.Series(label: "s\(i)", style: style, points: points)
  }
  let image = LinePlot(title: "t", xLabel: "x", yLabel: "y", series: series)
    .render(width: 400, height: 300)
  // A vertical cut through the flat segment between x = 1 and 2: red above and below blue,
  // blue above and below green.
  var column = 0
  for x in 62..<300 where count(LinePlot.palette[2], in: image, x: x..<(x + 1), y: 0..<300) > 0 {
    column = x
  }
  column -= 20  // well inside the last segment, away from the markers
  let cut = (0..<300).map { image.pixel(x: column, y: $0) }
  let red = cut.indices.filter { cut[$0] == LinePlot.palette[0] }
  let blue = cut.indices.filter { cut[$0] == LinePlot.palette[1] }
  let green = cut.indices.filter { cut[$0] == LinePlot.palette[2] }
  #expect(!green.isEmpty && !blue.isEmpty && !red.isEmpty)
  if let g = green.first, let b = blue.first, let r = red.first {
    #expect(r < b && b < g, "top edges: red \(r), blue \(b), green \(g)")
    #expect(red.last! > blue.last! && blue.last! > green.last!)
  }
  // At a shared data point all three markers show: the big circle's rim, the square, the
  // diamond in the middle.
  #expect(Set(LinePlot.scheduleStyles.map(\.marker)).count == 3)
  #expect(Set(LinePlot.scheduleStyles.map(\.markerSize)).count == 3)
}

@Test("markers have distinct shapes; hollow markers are white inside")
func markers() {
  var areas: [LinePlot.Marker: Int] = [:]
  for shape in LinePlot.Marker.allCases {
    var image = PlotCanvas(width: 30, height: 30)
    image.marker(shape, x: 15, y: 15, size: 15, .black)
    areas[shape] = count(.black, in: image, x: 0..<30, y: 0..<30)
  }
  #expect(areas[LinePlot.Marker.none] == 0)
  let sizes = LinePlot.Marker.allCases.filter { $0 != .none }.compactMap { areas[$0] }
  #expect(Set(sizes).count == sizes.count, "areas \(areas)")
  var hollow = PlotCanvas(width: 30, height: 30, color: .gray)
  hollow.marker(.circle, x: 15, y: 15, size: 15, .black, isFilled: false)
  #expect(hollow.pixel(x: 15, y: 15) == .white)
  #expect(hollow.pixel(x: 15, y: 8) == .black)
}

@Test("dashed lines leave gaps and keep their rhythm across segments")
func dashes() {
  var image = PlotCanvas(width: 60, height: 5)
  let phase = image.line(from: (0, 2), to: (29, 2), .black, style: .dashed(on: 4, off: 3))
  image.line(from: (30, 2), to: (59, 2), .black, style: .dashed(on: 4, off: 3), phase: phase + 1)
  let row = (0..<60).map { image.pixel(x: $0, y: 2) == .black }
  #expect(row == (0..<60).map { $0 % 7 < 4 })
}

@Test("font: ASCII 32-126, 5 columns, lower case distinct from upper case, descenders")
func fontGlyphs() {
  for value in 32...126 {
    let character = Character(UnicodeScalar(UInt8(value)))
    let rows = BitmapFont.glyphs[character]
    #expect(rows != nil, "no glyph for '\(character)'")
    if let rows {
      #expect((rows.count == 7 || rows.count == 9) && rows.allSatisfy { $0.count == 5 })
    }
    #expect(BitmapFont.glyph(character).count == BitmapFont.height)
  }
  for letter in "abcdefghijklmnopqrstuvwxyz" {
    #expect(
      BitmapFont.glyph(letter) != BitmapFont.glyph(Character(letter.uppercased())), "\(letter)")
  }
  let descending = Set("gjpqy,;_")
  for (character, rows) in BitmapFont.glyphs where rows.count == 9 {
    #expect(descending.contains(character) == rows.suffix(2).contains { $0.contains("#") })
  }
  var image = PlotCanvas(width: 40, height: 20)
  #expect(image.text("1%", x: 1, y: 1, .black) == 12)
  #expect(image.pixel(x: 3, y: 1) == .black)  // the top of the "1"
  // "mIoU" is not "MIOU".
  var lower = PlotCanvas(width: 40, height: 10)
  var upper = PlotCanvas(width: 40, height: 10)
  lower.text("mIoU", x: 0, y: 0, .black)
  upper.text("MIOU", x: 0, y: 0, .black)
  #expect(lower.pixels != upper.pixels)
  // Scale 2 smooths diagonals: the "/" has no 2x2 staircase corners left unfilled.
  let slash = BitmapFont.mask("/", scale: 2)
  #expect(slash.count == 18 && slash[0].count == 12)
  let plain = BitmapFont.glyph("/").map { $0.map { $0 == "#" } }
  #expect(slash.joined().filter { $0 }.count > 4 * plain.joined().filter { $0 }.count)
}

@Test("vertical text reads bottom to top")
func verticalText() {
  var image = PlotCanvas(width: 20, height: 40)
  let length = image.verticalText("L", x: 2, y: 2, .black)
  #expect(length == 6)
  // "L" has its stem in column 0 (rows 0-6) and its foot in row 6: turned, the stem is the
  // bottom row of the box and the foot its right column.
  #expect(image.pixel(x: 2, y: 2 + 5) == .black)
  #expect(image.pixel(x: 2 + 6, y: 2 + 1) == .black)
}

@Test("data set names in subtitles are short")
func datasetLine() {
  #expect(
    LinePlot.shortSpec("camvid:/work/shared/data/camvid/train.txt?include=0001TP&x=/a/b")
      == "camvid:train.txt?include=0001TP&x=/a/b")
  #expect(LinePlot.shortSpec("cityscapes:/data/cityscapes:val") == "cityscapes:cityscapes:val")
  #expect(
    LinePlot.datasetLine(["dataset": "/d/Task04_Hippocampus", "kind": "volume"])
      == "data Task04_Hippocampus")
  #expect(LinePlot.wrapped("aaa bbb ccc", width: 6 * 7) == ["aaa bbb", "ccc"])
}
