#!/usr/bin/env python3
"""NIfTI fixtures and an independent reader for the Medical tests (needs nibabel + numpy).

  make_nifti_fixtures.py make OUTDIR      write fixtures with nibabel and OUTDIR/manifest.json
  make_nifti_fixtures.py describe [--no-data] FILE...
                                          print, for each file, what nibabel reads (JSON)
  make_nifti_fixtures.py dice K TABLE PRED GT [PRED GT ...]
                                          per-case, per-class Dice counts with numpy (JSON);
                                          PRED and GT are raw uint8 files; TABLE (e.g. 0,1,1)
                                          maps labels to classes first, "-" for none

For every fixture, the manifest gives the shape, zooms, axis codes, affine and the voxels that
nibabel's get_fdata() returns, written as little-endian float64 to NAME.f64 next to the file;
likewise for nibabel.as_closest_canonical(image): canonical_shape, canonical_affine, NAME.canon.f64.
Install nibabel outside the repository, e.g. with scripts/setup_peers.sh (../venv-peers).
"""
import json
import os
import sys

import numpy as np


def affines():
    ras = np.array([[2.0, 0, 0, -30.5], [0, 1.5, 0, 12.25], [0, 0, 3.0, 7.0], [0, 0, 0, 1]])
    lps = np.array([[-2.0, 0, 0, 30.5], [0, -1.5, 0, -12.25], [0, 0, 3.0, 7.0], [0, 0, 0, 1]])
    # A permuted, flipped storage order: storage axes run S, L, A ("SLA").
    sla = np.array([[0, -1.0, 0, 5], [0, 0, 2.0, -3], [2.5, 0, 0, 1], [0, 0, 0, 1]])
    return {"ras": ras, "lps": lps, "sla": sla}


def oblique():
    """Rotations of 25 and 40 degrees applied to permuted, scaled axes (no 45-degree ties)."""
    def rot(axis, degrees):
        t = np.deg2rad(degrees)
        c, s = np.cos(t), np.sin(t)
        m = np.eye(3)
        i, j = [(1, 2), (0, 2), (0, 1)][axis]
        m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
        return m
    out = {}
    for name, (r, perm) in {
        "oblique_a": (rot(2, 25) @ rot(0, 40), [0, 1, 2]),
        "oblique_b": (rot(1, -40) @ rot(2, 25), [2, 0, 1]),
    }.items():
        a = np.eye(4)
        a[:3, :3] = (r @ np.eye(3)[:, perm]) @ np.diag([1.5, -2.0, 3.0])
        a[:3, 3] = [4.0, -7.0, 11.0]
        out[name] = a
    return out


def values(dtype, shape, rng):
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        lo, hi = max(info.min, -1000), min(info.max, 1000)
        return rng.integers(lo, hi + 1, size=shape).astype(dtype)
    return (rng.standard_normal(shape) * 100).astype(dtype)


def describe(path, data=True):
    import nibabel as nib

    img = nib.load(path)
    if not data:
        return {
            "shape": [int(v) for v in img.shape],
            "zooms": [float(z) for z in img.header.get_zooms()[:3]],
            "axcodes": "".join(nib.aff2axcodes(img.affine)),
            "affine": [[float(v) for v in row] for row in img.affine[:3]],
            "dtype": str(img.header.get_data_dtype()),
            "qform": [[float(v) for v in row] for row in img.header.get_qform()[:3]],
            "qform_code": int(img.header["qform_code"]),
            "sform_code": int(img.header["sform_code"]),
        }
    return {
        "shape": [int(s) for s in img.shape],
        "zooms": [float(z) for z in img.header.get_zooms()[:3]],
        "axcodes": "".join(nib.aff2axcodes(img.affine)),
        "affine": [[float(v) for v in row] for row in img.affine[:3]],
        "dtype": str(img.header.get_data_dtype()),
        "data": [float(v) for v in np.asarray(img.get_fdata()).ravel(order="F")],
    }


def make(outdir):
    import nibabel as nib

    os.makedirs(outdir, exist_ok=True)
    rng = np.random.default_rng(1234)
    shape = (5, 4, 3)
    cases = []

    def save(name, img, **extra):
        path = os.path.join(outdir, name)
        nib.save(img, path)
        d = describe(path)
        np.asarray(d.pop("data"), dtype="<f8").tofile(path + ".f64")
        canonical = nib.as_closest_canonical(nib.load(path))
        np.asarray(canonical.get_fdata(), dtype="<f8").ravel(order="F").tofile(path + ".canon.f64")
        d.update(
            name=name,
            canonical_shape=[int(v) for v in canonical.shape],
            canonical_affine=[[float(v) for v in row] for row in canonical.affine[:3]],
            **extra,
        )
        cases.append(d)

    for dtype in ["uint8", "int8", "int16", "uint16", "int32", "float32", "float64"]:
        for aff_name, aff in affines().items():
            for ext in [".nii", ".nii.gz"]:
                img = nib.Nifti1Image(values(np.dtype(dtype), shape, rng), aff)
                img.set_qform(aff, code=1)
                img.set_sform(aff, code=1)
                save(f"{dtype}_{aff_name}{ext}", img)
    for aff_name, aff in oblique().items():
        img = nib.Nifti1Image(values(np.dtype("float32"), shape, rng), aff)
        save(f"{aff_name}.nii.gz", img)
        img = nib.Nifti1Image(values(np.dtype("int16"), shape, rng), None)
        img.set_qform(aff, code=1)
        img.set_sform(None, code=0)
        save(f"{aff_name}_qform.nii", img)
    # Scaling: int16 on disk, slope 0.5 and intercept -3.
    img = nib.Nifti1Image(values(np.dtype("int16"), shape, rng), affines()["lps"])
    img.header.set_data_dtype(np.int16)
    img.header.set_slope_inter(0.5, -3.0)
    img.set_sform(affines()["lps"], code=2)
    save("scaled_int16_lps.nii.gz", img, slope=0.5, inter=-3.0)
    # Big-endian header and data.
    hdr = nib.Nifti1Header(endianness=">")
    hdr.set_data_dtype(">i2")
    img = nib.Nifti1Image(values(np.dtype(">i2"), shape, rng), affines()["ras"], header=hdr)
    save("bigendian_int16_ras.nii", img, big_endian=True)
    hdr = nib.Nifti1Header(endianness=">")
    img = nib.Nifti1Image(values(np.dtype(">f4"), shape, rng), affines()["sla"], header=hdr)
    save("bigendian_float32_sla.nii.gz", img, big_endian=True)
    # qform only (sform_code 0), with a rotation and qfac -1 (LPS-like).
    img = nib.Nifti1Image(values(np.dtype("float32"), shape, rng), None)
    img.set_qform(affines()["lps"], code=1)
    img.set_sform(None, code=0)
    save("qform_only_lps.nii.gz", img)
    img = nib.Nifti1Image(values(np.dtype("float32"), shape, rng), None)
    img.set_qform(affines()["sla"], code=1)
    img.set_sform(None, code=0)
    save("qform_only_sla.nii", img)
    # Neither code: nibabel's fallback affine.
    img = nib.Nifti1Image(values(np.dtype("uint8"), shape, rng), None)
    img.header.set_zooms((2.0, 3.0, 4.0))
    img.set_qform(None, code=0)
    img.set_sform(None, code=0)
    save("no_codes.nii", img)
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(cases, f, indent=1)


def dice(k, table, pred_path, gt_path):
    pred = np.fromfile(pred_path, dtype=np.uint8)
    gt = np.fromfile(gt_path, dtype=np.uint8)
    if table != "-":
        lut = np.full(256, 255, dtype=np.uint8)
        values = [int(v) for v in table.split(",")]
        lut[: len(values)] = values
        pred, gt = lut[pred], lut[gt]
    out = []
    for c in range(int(k)):
        p, g = pred == c, gt == c
        out.append({"tp": int(np.sum(p & g)), "p": int(p.sum()), "g": int(g.sum())})
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1:3] == ["describe", "--no-data"]:
        print(json.dumps([describe(p, data=False) for p in sys.argv[3:]]))
    elif len(sys.argv) >= 3 and sys.argv[1] == "describe":
        print(json.dumps([describe(p) for p in sys.argv[2:]]))
    elif len(sys.argv) >= 6 and len(sys.argv) % 2 == 0 and sys.argv[1] == "dice":
        k, table, files = sys.argv[2], sys.argv[3], sys.argv[4:]
        print(json.dumps([dice(k, table, p, g) for p, g in zip(files[::2], files[1::2])]))
    else:
        sys.exit(__doc__)
