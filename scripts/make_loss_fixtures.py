#!/usr/bin/env python3
"""Writes numpy reference values for the Tensor losses into Tests/TensorTests/Fixtures/.

Usage: python3 scripts/make_loss_fixtures.py   (from the package root; deterministic, seed 2024)

losses.json holds a list of cases. Each case: kind ("cross_entropy" or "reduce"), shape [n,h,w,C],
logits (row-major NHWC), labels (one per pixel, 255 = ignore), optional class_weights, optional
super_class_of_fine (null = no super-class), and the expected loss and logits gradient computed
here in float64 with numpy (PyTorch's weighted-mean semantics for the class weights).
"""
import json
import os

import numpy as np

IGNORE = 255


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def cross_entropy(z, y, weights):
    c = z.shape[1]
    w = np.ones(c) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = y != IGNORE
    lsm = log_softmax(z)
    p = np.exp(lsm)
    wi = np.zeros(len(y))
    wi[keep] = w[y[keep]]
    total = wi.sum()
    nll = np.zeros(len(y))
    nll[keep] = -lsm[np.nonzero(keep)[0], y[keep]]
    loss = (wi * nll).sum() / total
    onehot = np.zeros_like(z)
    onehot[np.nonzero(keep)[0], y[keep]] = 1
    grad = wi[:, None] * (p - onehot) / total
    return loss, grad


def reduce_loss(z, y, mapping):
    keep = y != IGNORE
    lsm = log_softmax(z)
    p = np.exp(lsm)
    loss = 0.0
    grad = np.zeros_like(z)
    count = keep.sum()
    for i in np.nonzero(keep)[0]:
        members = [f for f, s in enumerate(mapping) if s is not None and s == y[i]]
        target = np.log(np.exp(lsm[i, members]).sum())
        loss -= target
        q = np.zeros(z.shape[1])
        q[members] = np.exp(lsm[i, members] - target)
        grad[i] = p[i] - q
    return loss / count, grad / count


def case(rng, kind, shape, weights=None, mapping=None, supers=None):
    n, h, w, c = shape
    pixels = n * h * w
    z = rng.normal(0, 2, size=(pixels, c))
    if kind == "cross_entropy":
        y = rng.integers(0, c, size=pixels)
    else:
        y = rng.integers(0, supers, size=pixels)
    y[rng.random(pixels) < 0.2] = IGNORE
    if kind == "cross_entropy":
        loss, grad = cross_entropy(z, y, weights)
    else:
        loss, grad = reduce_loss(z, y, mapping)
    # Round the logits to float32 first so that Swift and numpy see the same inputs.
    return {
        "kind": kind, "shape": list(shape),
        "logits": [float(v) for v in z.astype(np.float32).reshape(-1)],
        "labels": [int(v) for v in y],
        "class_weights": None if weights is None else [float(v) for v in weights],
        "super_class_of_fine": mapping,
        "loss": float(loss), "gradient": [float(v) for v in grad.reshape(-1)],
    }


def main():
    rng = np.random.default_rng(2024)
    cases = []
    # The float32 rounding of the logits is applied before computing the references.
    for spec in [
        ("cross_entropy", (2, 3, 5, 4), None, None, None),
        ("cross_entropy", (1, 5, 3, 6), [0.5, 2.0, 1.0, 0.0, 3.0, 1.5], None, None),
        ("reduce", (2, 3, 3, 7), None, [0, 0, 1, None, 2, 1, 0], 3),
        ("reduce", (1, 4, 5, 5), None, [1, None, 0, 1, 1], 2),
    ]:
        kind, shape, weights, mapping, supers = spec
        sub = np.random.default_rng(rng.integers(1 << 30))
        c = case(sub, kind, shape, weights, mapping, supers)
        z = np.asarray(c["logits"], dtype=np.float64).reshape(-1, shape[3])
        y = np.asarray(c["labels"])
        loss, grad = (cross_entropy(z, y, weights) if kind == "cross_entropy"
                      else reduce_loss(z, y, mapping))
        c["loss"], c["gradient"] = float(loss), [float(v) for v in grad.reshape(-1)]
        cases.append(c)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = os.path.join(root, "Tests", "TensorTests", "Fixtures", "losses.json")
    with open(out, "w") as f:
        json.dump(cases, f)
    print(f"wrote {len(cases)} cases to {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
