#!/usr/bin/env python3
"""Writes the malformed and unusual input files of scripts/probe_inputs.sh into OUT.

Pure Python (struct, zlib, gzip); a JPEG is made with Pillow when it can be imported, otherwise
the probe copies the test fixture. Usage: probe_fixtures.py OUT
"""
import gzip
import json
import math
import os
import struct
import sys
import zlib

out = sys.argv[1]
os.makedirs(out, exist_ok=True)


def write(name, data):
    path = os.path.join(out, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


# ---- NIfTI-1 ----------------------------------------------------------------------------------

def nifti(shape=(8, 8, 8), datatype=16, values=None, pixdim=(1.0, 1.0, 1.0), dim0=3,
          magic=b"n+1\0", sizeof_hdr=348, vox_offset=352.0, extra_dims=()):
    h = bytearray(348)
    struct.pack_into("<i", h, 0, sizeof_hdr)
    dims = [dim0] + list(shape) + list(extra_dims)
    dims += [1] * (8 - len(dims))
    struct.pack_into("<8h", h, 40, *dims[:8])
    bitpix = {2: 8, 4: 16, 16: 32, 64: 64}[datatype]
    struct.pack_into("<hh", h, 70, datatype, bitpix)
    struct.pack_into("<8f", h, 76, 1.0, *pixdim, 1.0, 1.0, 1.0, 1.0)
    struct.pack_into("<f", h, 108, vox_offset)
    struct.pack_into("<ff", h, 112, 1.0, 0.0)
    h[344:348] = magic
    n = 1
    for s in shape:
        n *= s
    if values is None:
        values = [float(i % 7) for i in range(n)]
    fmt = {2: "B", 4: "h", 16: "f", 64: "d"}[datatype]
    data = struct.pack("<%d%s" % (len(values), fmt), *values)
    return bytes(h) + b"\0\0\0\0" + data


write("nifti/ok.nii", nifti())
write("nifti/ok_labels.nii", nifti(datatype=2, values=[i % 3 for i in range(512)]))
write("nifti/one_slice.nii", nifti(shape=(8, 8, 1), values=[float(i % 5) for i in range(64)]))
write("nifti/one_slice_labels.nii", nifti(shape=(8, 8, 1), datatype=2, values=[1] * 64))
write("nifti/tiny_2x2x2.nii", nifti(shape=(2, 2, 2), values=[float(i) for i in range(8)]))
write("nifti/truncated_100.nii", nifti()[:100])
write("nifti/truncated_header_348.nii", nifti()[:348])
write("nifti/truncated_data.nii", nifti()[:1000])
write("nifti/empty.nii", b"")
write("nifti/not_nifti.nii", b"hello world, this is not a NIfTI file\n" * 20)
write("nifti/bad_magic.nii", nifti(magic=b"ni1\0"))
write("nifti/dim0_zero.nii", nifti(dim0=0))
write("nifti/dims_negative.nii", nifti(shape=(8, -8, 8), values=[0.0] * 512))
write("nifti/dims_huge.nii", nifti(shape=(32767, 32767, 32767), values=[0.0] * 16))
write("nifti/4d.nii", nifti(shape=(4, 4, 4), dim0=4, extra_dims=(2,), values=[0.0] * 128))
big = bytearray(nifti())
big[0:4] = struct.pack(">i", 348)
write("nifti/big_endian_header_little_data.nii", bytes(big))
write("nifti/vox_offset_huge.nii", nifti(vox_offset=1e9))
rgb = bytearray(nifti())
struct.pack_into("<h", rgb, 70, 128)
write("nifti/datatype_rgb.nii", bytes(rgb))
write("nifti/vox_offset_nan.nii", nifti(vox_offset=float("nan")))
write("nifti/nan_voxels.nii", nifti(values=[float("nan")] * 512))
write("nifti/inf_voxels.nii", nifti(values=[float("inf")] * 256 + [0.0] * 256))
write("nifti/zero_spacing.nii", nifti(pixdim=(0.0, 1.0, 1.0)))
write("nifti/nan_spacing.nii", nifti(pixdim=(float("nan"), 1.0, 1.0)))
write("nifti/labels_200.nii", nifti(datatype=2, values=[i % 3 for i in range(511)] + [200]))
write("nifti/labels_float_half.nii", nifti(values=[0.5] * 512))
write("nifti/labels_nan.nii", nifti(values=[float("nan")] * 512))
gz = gzip.compress(nifti())
write("nifti/ok.nii.gz", gz)
write("nifti/truncated.nii.gz", gz[: len(gz) // 2])
write("nifti/corrupt.nii.gz", gz[:10] + bytes(b ^ 0x55 for b in gz[10:]))
# A gzip bomb: a valid header (64^3 float32) followed by 9 GiB of zeros, about 9 MB on disk.
# Deflate output after a full flush is byte-aligned and the same for the same input, so the
# zero chunk is compressed once and repeated; the gzip trailer (CRC, size) is left wrong, since
# a reader that inflates only what the header asks for never reaches it.
raw = zlib.compressobj(9, zlib.DEFLATED, -15)
head = raw.compress(nifti(shape=(64, 64, 64), values=[0.0] * (64 ** 3))) + raw.flush(zlib.Z_FULL_FLUSH)
zeros_chunk = raw.compress(bytes(1 << 20)) + raw.flush(zlib.Z_FULL_FLUSH)
tail = raw.flush(zlib.Z_FINISH)
chunks = [b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff", head, zeros_chunk * 9216, tail, bytes(8)]
write("nifti/bomb.nii.gz", b"".join(chunks))

# Folders for medical-dice and predict-volume.
write("dice/pred/case1.nii", nifti(datatype=2, values=[i % 3 for i in range(512)]))
write("dice/truth/case1.nii", nifti(datatype=2, values=[i % 3 for i in range(512)]))
write("dice200/pred/case1.nii", nifti(datatype=2, values=[i % 3 for i in range(512)]))
write("dice200/truth/case1.nii",
      nifti(datatype=2, values=[i % 3 if i % 5 else 200 for i in range(512)]))
write("dicepred200/pred/case1.nii",
      nifti(datatype=2, values=[i % 3 if i % 5 else 200 for i in range(512)]))
write("dicepred200/truth/case1.nii", nifti(datatype=2, values=[i % 3 for i in range(512)]))
write("diceshape/pred/case1.nii", nifti(datatype=2, shape=(8, 8, 4), values=[0] * 256))
write("diceshape/truth/case1.nii", nifti(datatype=2, values=[0] * 512))
write("diceunpaired/pred/case1.nii", nifti(datatype=2, values=[0] * 512))
write("diceunpaired/truth/case2.nii", nifti(datatype=2, values=[0] * 512))
os.makedirs(os.path.join(out, "empty"), exist_ok=True)
os.makedirs(os.path.join(out, "empty2"), exist_ok=True)
write("notniftis/readme.txt", b"no volumes here\n")

# ---- safetensors ------------------------------------------------------------------------------

def safetensors(header, data=b"", length=None):
    text = json.dumps(header).encode()
    while len(text) % 8:
        text += b" "
    return struct.pack("<Q", len(text) if length is None else length) + text + data


description = json.dumps({"formatVersion": 1, "classSetName": "cityscapes-19",
                          "architecture": {"unet": {"configuration": {
                              "inputChannels": 3, "widths": [4, 8], "classCount": 19}}}})
meta = {"__metadata__": {"atso.checkpoint": description}}
write("st/empty.safetensors", b"")
write("st/short.safetensors", b"\x01\x02\x03")
write("st/header_length_huge.safetensors", struct.pack("<Q", 1 << 62) + b"{}")
write("st/header_not_json.safetensors", safetensors({}, length=8) + b"not json")
write("st/header_array.safetensors", struct.pack("<Q", 8) + b"[1,2,3] ")
write("st/shape_overflow.safetensors", safetensors(
    dict(meta, w={"dtype": "F32", "shape": [1 << 40, 1 << 40], "data_offsets": [0, 0]})))
write("st/shape_overflow2.safetensors", safetensors(
    dict(meta, w={"dtype": "F32", "shape": [1 << 62], "data_offsets": [0, 0]})))
write("st/shape_negative.safetensors", safetensors(
    dict(meta, w={"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}), b"\0" * 4))
write("st/offsets_overflow.safetensors", safetensors(
    dict(meta, w={"dtype": "F32", "shape": [1],
                  "data_offsets": [9223372036854775800, 9223372036854775804]})))
write("st/offsets_negative.safetensors", safetensors(
    dict(meta, w={"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]})))
write("st/dtype_f16.safetensors", safetensors(
    dict(meta, w={"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}), b"\0" * 4))
write("st/truncated_data.safetensors", safetensors(
    dict(meta, w={"dtype": "F32", "shape": [100], "data_offsets": [0, 400]}), b"\0" * 40))
write("st/no_metadata.safetensors", safetensors(
    {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4))
write("st/bad_description.safetensors", safetensors(
    {"__metadata__": {"atso.checkpoint": "{\"formatVersion\": 1}"}}))


def architecture(config):
    return {"__metadata__": {"atso.checkpoint": json.dumps(
        {"formatVersion": 1, "classSetName": "cityscapes-19", "architecture": config})}}


write("st/widths_empty.safetensors", safetensors(architecture(
    {"unet": {"configuration": {"inputChannels": 3, "widths": [], "classCount": 19}}})))
write("st/widths_zero.safetensors", safetensors(architecture(
    {"unet": {"configuration": {"inputChannels": 3, "widths": [0, 8], "classCount": 19}}})))
write("st/widths_huge.safetensors", safetensors(architecture(
    {"unet": {"configuration": {"inputChannels": 3, "widths": [1 << 30, 1 << 30],
                                "classCount": 19}}})))
write("st/classes_zero.safetensors", safetensors(architecture(
    {"unet": {"configuration": {"inputChannels": 3, "widths": [4, 8], "classCount": 0}}})))
write("st/deeplab_widths.safetensors", safetensors(architecture(
    {"deepLab": {"configuration": {"inputChannels": 3, "widths": [4], "asppChannels": 4,
                                   "asppRates": [], "classCount": 19}}})))
write("st/format_version_99.safetensors", safetensors({"__metadata__": {"atso.checkpoint":
      json.dumps({"formatVersion": 99, "classSetName": "cityscapes-19", "architecture": {
          "unet": {"configuration": {"inputChannels": 3, "widths": [4, 8],
                                     "classCount": 19}}}})}}))

# ---- images -----------------------------------------------------------------------------------

def png(width, height, color_type=2, depth=8, rows=None, extra=b""):
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color_type]
    if rows is None:
        rows = b"".join(b"\0" + bytes((x * 7 + y) % 256 for x in range(width * channels))
                        for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


ok_png = png(32, 16)
write("img/ok.png", ok_png)
write("img/truncated.png", ok_png[: len(ok_png) // 2])
write("img/empty.png", b"")
write("img/text.png", b"this is text\n")
write("img/huge_header.png", png(100000, 100000, rows=b"\0"))
write("img/zero_width.png", png(0, 16, rows=b""))
write("img/bad_crc.png", ok_png[:40] + bytes([ok_png[40] ^ 0xFF]) + ok_png[41:])
write("img/label_rgb.png", png(32, 16))
try:
    from PIL import Image  # noqa: E402
    import random
    random.seed(1)
    im = Image.new("RGB", (64, 48))
    im.putdata([(random.randrange(256), random.randrange(256), random.randrange(256))
                for _ in range(64 * 48)])
    path = os.path.join(out, "img/ok.jpg")
    im.save(path, quality=90)
    im.save(os.path.join(out, "img/progressive.jpg"), quality=90, progressive=True)
    data = open(path, "rb").read()
    write("img/truncated.jpg", data[: len(data) // 2])
    prog = open(os.path.join(out, "img/progressive.jpg"), "rb").read()
    write("img/truncated_progressive.jpg", prog[: len(prog) // 2])
    # Corrupt entropy-coded data in the middle (libjpeg warns "Corrupt JPEG data").
    mid = len(data) // 2
    write("img/corrupt_middle.jpg", data[:mid] + b"\xFF\xD0" * 8 + data[mid + 16:])
except ImportError:
    pass
write("img/jpeg_marker_only.jpg", b"\xFF\xD8\xFF")

# ---- class sets, mappings, configurations -----------------------------------------------------

write("json/not_json.json", b"{ not json")
write("json/empty.json", b"")
write("json/deep.json", b"[" * 100000 + b"]" * 100000)
# JSON has no NaN: an overflowing literal is the way a file gives an infinite learning rate.
write("json/config_inf_lr.json",
      b'{"backend": {"kind": "image", "source": "camvid:x.txt", "test": "camvid:y.txt", "labeledFraction": 0.5, '
      b'"learningRate": 1e999}}')
write("json/config_negative_lr.json", json.dumps({"backend": {
    "kind": "image", "source": "camvid:x.txt", "test": "camvid:y.txt", "labeledFraction": 0.5,
    "learningRate": -1}}).encode())
write("json/config_batch_huge.json", json.dumps({"backend": {
    "kind": "image", "source": "camvid:x.txt", "test": "camvid:y.txt", "labeledFraction": 0.5,
    "batch": 100000000}}).encode())
write("json/config_widths_4.json", json.dumps({"backend": {
    "kind": "image", "source": "camvid:x.txt", "test": "camvid:y.txt", "labeledFraction": 0.5,
    "widths": [4]}}).encode())
write("json/config_size_1x1.json", json.dumps({"backend": {
    "kind": "image", "source": "camvid:x.txt", "test": "camvid:y.txt", "labeledFraction": 0.5,
    "size": "1x1"}}).encode())
write("json/config_unknown_key.json", json.dumps({"sede": 1}).encode())
write("json/config_folds_huge.json", json.dumps({"folds": 1 << 40}).encode())
write("json/config_generations_neg.json", json.dumps({"generations": -3}).encode())
write("json/config_wrong_type.json", json.dumps({"seed": "seven"}).encode())
write("json/dataset_json_bad/dataset.json", b"{\"training\": 5}")
write("json/dataset_json_missing/dataset.json",
      json.dumps({"training": [{"image": "./imagesTr/a.nii.gz",
                                "label": "./labelsTr/a.nii.gz"}]}).encode())
write("lists/empty.txt", b"")
write("lists/comments.txt", b"# nothing\n\n")
write("lists/missing.txt", b"nope.png nope_label.png\n")
write("lists/three_fields.txt", b"a b c\n")
print(out)
