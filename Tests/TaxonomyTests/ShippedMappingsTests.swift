import Foundation
import Testing
@testable import Taxonomy

@Suite struct ShippedMappingsTests {
  @Test func everyShippedFileValidates() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let files = try FileManager.default.contentsOfDirectory(atPath: mappingsDirectory)
    #expect(library.classSets.count == files.filter { $0.hasSuffix(".classes.json") }.count)
    #expect(library.mappings.count == files.filter { $0.hasSuffix(".mapping.json") }.count)
    for name in [
      "cityscapes-34", "cityscapes-19", "cityscapes-categories", "super-5",
      "mapillary-vistas-v1.2", "camvid-11", "camvid-32", "msd-hippocampus", "hippocampus",
    ] {
      #expect(library.classSets[name] != nil, "missing class set \(name)")
    }
    for mapping in library.mappings {
      #expect(!mapping.citation.isEmpty, "\(mapping.name) cites no source")
      // Loading the file on its own (class sets found next to it) gives the same mapping.
      let file = files.first { $0.hasSuffix(".mapping.json") && $0.contains(mapping.source.name) }
      #expect(file != nil)
    }
    for classSet in library.classSets.values { #expect(!classSet.citation.isEmpty) }
  }

  @Test func recordNamesListTheOtherVariants() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let mapillary = try library.mapping(from: "mapillary-vistas-v1.2", to: "cityscapes-19")
    #expect(
      library.recordName(of: mapillary)
        == "'mapillary-vistas-v1.2-to-cityscapes-19' (variant A), one of 5 variants (the others: "
        + "'mapillary-vistas-v1.2-to-cityscapes-19.ladd' (B), "
        + "'mapillary-vistas-v1.2-to-cityscapes-19.mseg' (D), "
        + "'mapillary-vistas-v1.2-to-cityscapes-19.mtaf19' (C), "
        + "'mapillary-vistas-v1.2-to-cityscapes-19.unipercept' (E); "
        + "`evaluate --variants` scores under each)")
    let cityscapes = try library.mapping(from: "cityscapes-34", to: "cityscapes-19")
    #expect(library.recordName(of: cityscapes) == "'cityscapes-34-to-cityscapes-19'")
  }

  @Test func classSetSizes() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let counts = library.classSets.mapValues(\.classes.count)
    #expect(counts["cityscapes-34"] == 34)
    #expect(counts["cityscapes-19"] == 19)
    #expect(counts["cityscapes-categories"] == 7)
    #expect(counts["super-5"] == 5)
    #expect(counts["mapillary-vistas-v1.2"] == 66)
    #expect(counts["camvid-11"] == 12)  // 11 classes + the void class 11
    #expect(counts["camvid-32"] == 32)
    let cityscapes = try library.classSet(named: "cityscapes-34")
    #expect(cityscapes.evaluatedClasses.count == 19)
    let mapillary = try library.classSet(named: "mapillary-vistas-v1.2")
    #expect(mapillary.ignoreIndex == 65)
    #expect(mapillary.evaluatedClasses.count == 65)
    #expect(mapillary.semanticClass(id: 17)?.color == LabelColor(red: 70, green: 70, blue: 70))
  }

  @Test func cityscapesLabelIdsToTrainIds() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let mapping = try library.mapping(from: "cityscapes-34", to: "cityscapes-19")
    let table = mapping.lookupTable
    // labels.py trainId column.
    let expected: [UInt8] = [
      255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8,
      9, 10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18,
    ]
    #expect(Array(table[0..<34]) == expected)
    #expect(table[34...].allSatisfy { $0 == 255 })
  }

  /// Mapillary 66 -> 19 (variant A) -> 5 (S2), composed, against a table written out by hand
  /// from TAXONOMIES.md §2.1 column A and the S2 column.
  @Test func mapillaryToSuperClassesComposition() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let toCityscapes = try library.mapping(named: "mapillary-vistas-v1.2-to-cityscapes-19")
    let toSuper = try library.mapping(named: "cityscapes-19-to-super-5")
    let composed = try toCityscapes.composed(with: toSuper)
    // super-5 ids: 0 road, 1 vehicle, 2 person, 3 vegetation, 4 others; 255 ignore.
    var expected = [UInt8](repeating: 255, count: 256)
    for id in [13, 24, 41, 2, 15] { expected[id] = 0 }  // road, lane marking, manhole, curb, sidewalk
    for id in [52, 54, 55, 57, 58, 61] { expected[id] = 1 }  // bicycle, bus, car, motorcycle, on rails, truck
    for id in [19, 20, 21, 22] { expected[id] = 2 }  // person, three riders
    for id in [29, 30] { expected[id] = 3 }  // terrain, vegetation
    for id in [3, 6, 17, 27, 45, 47, 48, 50] { expected[id] = 4 }  // fence, wall, building, sky, poles, light, sign
    #expect(composed.lookupTable == expected)
    // The library finds the same path by class set names.
    let found = try library.mapping(from: "mapillary-vistas-v1.2", to: "super-5")
    #expect(found.lookupTable == expected)
    #expect(found.source.name == "mapillary-vistas-v1.2" && found.target.name == "super-5")
    // Fine -> super table: indexed by Mapillary id, nil = ignored.
    let superTable = composed.superClassTable
    #expect(superTable.count == 66)
    for id in 0..<66 { #expect(superTable[id] == (expected[id] == 255 ? nil : Int(expected[id]))) }
    #expect(composed.children(ofTargetID: 2) == [19, 20, 21, 22])
  }

  @Test func camVidToSuperClassesIsTheComposition() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let direct = try library.mapping(named: "camvid-11-to-super-5")
    let composed = try library.mapping(named: "camvid-11-to-cityscapes-19")
      .composed(with: library.mapping(named: "cityscapes-19-to-super-5"))
    #expect(direct.lookupTable == composed.lookupTable)
    #expect(direct.lookupTable[11] == 255)  // void
  }

  @Test func variantsAreNamedAndNotDefault() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let variants = library.mappings.filter {
      $0.source.name == "mapillary-vistas-v1.2" && $0.target.name == "cityscapes-19"
    }
    #expect(variants.count == 5)
    #expect(variants.filter(\.isDefault).map(\.variant) == ["A"])
    // Mapped source counts from TAXONOMIES.md §2.
    let mapped = Dictionary(
      uniqueKeysWithValues: variants.map {
        ($0.variant ?? "", $0.targetIDs.compactMap { $0 }.count)
      })
    #expect(mapped == ["A": 25, "B": 32, "C": 22, "D": 37, "E": 36])
    let narrow = try library.mapping(named: "cityscapes-19-to-super-5.narrow")
    #expect(!narrow.isDefault && narrow.variant == "S1")
    #expect(narrow.targetID(ofSourceID: 1) == 4 && narrow.targetID(ofSourceID: 9) == 4)
    let hippocampus = try library.mapping(from: "msd-hippocampus", to: "hippocampus")
    #expect(Array(hippocampus.lookupTable[0...3]) == [0, 1, 1, 255])
  }

  @Test(
    .enabled(
      if: FileManager.default.fileExists(
        atPath: sharedDataDirectory + "/mapillary-mini/classes_v1.2_reconstructed.json"),
      "needs ../shared/data/mapillary-mini (absent)"))
  func mapillaryClassSetMatchesTheStagedConfig() throws {
    let data = try Data(
      contentsOf: URL(
        fileURLWithPath: sharedDataDirectory + "/mapillary-mini/classes_v1.2_reconstructed.json"))
    let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    let labels = try #require(root["labels"] as? [[String: Any]])
    let classSet = try ClassSet(
      contentsOfFile: mappingsDirectory + "/mapillary-vistas-v1.2.classes.json")
    #expect(labels.count == classSet.classes.count)
    for (label, semanticClass) in zip(labels, classSet.classes) {
      #expect(label["id"] as? Int == semanticClass.id)
      #expect(label["name"] as? String == semanticClass.name)
      #expect(label["readable"] as? String == semanticClass.readableName)
      #expect(label["evaluate"] as? Bool == semanticClass.isEvaluated)
      let color = try #require(semanticClass.color)
      #expect(label["color"] as? [Int] == [Int(color.red), Int(color.green), Int(color.blue)])
    }
  }
}

@Suite struct SerializationTests {
  @Test func classSetsAndMappingsRoundTripThroughJSONC() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    for classSet in library.classSets.values {
      #expect(try ClassSet(jsonText: classSet.jsonText(), file: classSet.name) == classSet)
    }
    for mapping in library.mappings {
      let reloaded = try LabelMapping(jsonText: mapping.jsonText(), file: mapping.name) {
        library.classSets[$0]
      }
      #expect(reloaded == mapping)
    }
  }

  @Test func outputCounts() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    let counts = library.classSets.mapValues(\.outputCount)
    #expect(counts["mapillary-vistas-v1.2"] == 65)
    #expect(counts["camvid-11"] == 11)
    #expect(counts["camvid-32"] == 32)
    #expect(counts["cityscapes-19"] == 19)
    #expect(counts["super-5"] == 5)
    #expect(counts["msd-hippocampus"] == 3)
  }
}

@Suite struct LibraryEvaluationTests {
  /// Ground truth in Cityscapes labelIds, prediction in trainIds, scored on the super-classes.
  @Test func reduceMixedClassSetsThroughTheLibrary() throws {
    let library = try MappingLibrary(directory: mappingsDirectory)
    var matrix = ConfusionMatrix(
      groundTruth: try library.classSet(named: "cityscapes-34"),
      prediction: try library.classSet(named: "cityscapes-19"))
    // gt: road, sidewalk, car, person, unlabeled, parking, vegetation, terrain
    // pred: road, road, car, car, road, road, terrain, 255
    matrix.accumulate(
      groundTruth: [7, 8, 26, 24, 0, 9, 21, 22], prediction: [0, 0, 13, 13, 0, 0, 9, 255])
    let report = try matrix.reduced(to: "super-5", using: library).report()
    // road: TP 2 (road, sidewalk); vehicle: TP 1, FP 1 (person row); person: FN 1;
    // vegetation: TP 1 (vegetation -> terrain), FN 1 (terrain -> void column).
    #expect(report.score(id: 0)?.iou == 1)
    #expect(report.score(id: 1)?.iou == 0.5)
    #expect(report.score(id: 2)?.iou == 0)
    #expect(report.score(id: 3)?.iou == 0.5)
    #expect(report.score(id: 4)?.iou.isNaN == true)
    #expect(report.evaluatedPixels == 6)
  }
}
