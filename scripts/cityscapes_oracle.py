#!/usr/bin/env python3
"""Test oracle: scores label arrays with cityscapesScripts' own evaluation functions.

Usage: cityscapes_oracle.py DIR

DIR/pairs.txt lists `gt.bin pred.bin height width` per line; each .bin is raw uint8 labelIds,
row-major. Every pair is written as PNGs (PIL) and fed to
cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling.evaluatePair with the module's
default `args` (instance-level scores off: no instanceIds images). Prints JSON with the class IoU
of every labelId (getIouScoreForLabel), the category IoU of every category
(getIouScoreForCategory), their averages (getScoreAverage) and the confusion matrix; NaN -> null.
Used by Tests/TaxonomyTests/CityscapesOracleTests.swift; never part of the product.
"""
import json
import math
import os
import sys

import numpy as np
from PIL import Image
from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as ev
from cityscapesscripts.helpers.labels import category2labels, labels


def main():
  directory = sys.argv[1]
  args = ev.args
  args.evalInstLevelScore = False
  args.evalPixelAccuracy = False
  args.quiet = True
  matrix = ev.generateMatrix(args)
  with open(os.path.join(directory, "pairs.txt")) as f:
    pairs = [line.split() for line in f if line.strip()]
  for index, (gt_name, pred_name, height, width) in enumerate(pairs):
    shape = (int(height), int(width))
    files = []
    for name, kind in ((gt_name, "gt"), (pred_name, "pred")):
      array = np.fromfile(os.path.join(directory, name), dtype=np.uint8).reshape(shape)
      path = os.path.join(directory, f"{kind}_{index}_labelIds.png")
      Image.fromarray(array, mode="L").save(path)
      files.append(path)
    ev.evaluatePair(files[1], files[0], matrix, None, {}, args)  # accumulates in place
  class_scores = {}
  for label in args.evalLabels:
    class_scores[ev.id2label[label].name] = ev.getIouScoreForLabel(label, matrix, args)
  category_scores = {}
  for category in category2labels:
    category_scores[category] = ev.getIouScoreForCategory(category, matrix, args)

  def clean(value):
    return None if isinstance(value, float) and math.isnan(value) else value

  by_id = {str(label): clean(ev.getIouScoreForLabel(label, matrix, args))
           for label in args.evalLabels}
  print(json.dumps({
      "classIoU": by_id,
      "categoryIoU": {k: clean(v) for k, v in category_scores.items()},
      "meanClassIoU": clean(ev.getScoreAverage(class_scores, args)),
      "meanCategoryIoU": clean(ev.getScoreAverage(category_scores, args)),
      "matrix": matrix.astype(np.int64).tolist(),
  }))


if __name__ == "__main__":
  main()
