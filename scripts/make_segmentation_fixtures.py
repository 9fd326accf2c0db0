#!/usr/bin/env python3
"""Writes the tiny PNG/JPEG fixtures of Tests/SegmentationTests/Fixtures.

Run once with Pillow installed (e.g. in a venv outside the repo):
    python3 scripts/make_segmentation_fixtures.py
The Swift tests hard-code the pixel values written here; expected.json holds Pillow's own
decode of the JPEG fixtures (compared with a tolerance, libjpeg versions differ slightly).
"""
import json
import os
import struct
import zlib

from PIL import Image, PngImagePlugin

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "SegmentationTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)


def path(name):
    return os.path.join(OUT, name)


W, H = 4, 3
GRAY = [0, 1, 2, 3, 7, 8, 11, 254, 255, 128, 64, 33]
PALETTE_IDX = [0, 1, 2, 3, 4, 5, 5, 4, 3, 2, 1, 0]
PALETTE = [(128, 64, 128), (244, 35, 232), (70, 70, 70), (107, 142, 35), (70, 130, 180), (0, 0, 142)]
RGB = [(10 * i, 20 * i % 256, 255 - 7 * i) for i in range(W * H)]

# 8-bit grayscale label map.
im = Image.new("L", (W, H))
im.putdata(GRAY)
im.save(path("gray8.png"))

# Same values with a gAMA chunk (gamma 1.0): a label reader must not rescale them.
info = PngImagePlugin.PngInfo()
info.add(b"gAMA", struct.pack(">I", 100000))
im.save(path("gray8_gamma.png"), pnginfo=info)

# 1-bit grayscale mask: samples 0 and 1.
mask = Image.new("1", (W, H))
mask.putdata([0, 255, 255, 0, 0, 0, 255, 255, 0, 255, 0, 255])
mask.save(path("gray1.png"))

# 16-bit grayscale with values above 255.
g16 = [0, 1, 255, 256, 1000, 24000, 24001, 26002, 65535, 7, 11, 300]
im16 = Image.new("I;16", (W, H))
im16.putdata(g16)
im16.save(path("gray16.png"))

# Palette (8-bit indices, 6 entries).
pal = Image.new("P", (W, H))
pal.putpalette([c for rgb in PALETTE for c in rgb])
pal.putdata(PALETTE_IDX)
# Palette stored with 4 bits per index (Pillow picks the depth from the palette size).
pal.save(path("palette4bit.png"))
# The same indices with a full 256-entry palette, stored with 8 bits per index.
pal256 = pal.copy()
pal256.putpalette([c for rgb in PALETTE for c in rgb] + [v for i in range(6, 256) for v in (i, i, i)])
pal256.save(path("palette8.png"))
# Palette with a transparency table (tRNS).
pal.save(path("palette_trns.png"), transparency=bytes([0, 128, 255, 255, 255, 255]))

# RGB and RGBA.
rgb = Image.new("RGB", (W, H))
rgb.putdata(RGB)
rgb.save(path("rgb8.png"))
rgba = Image.new("RGBA", (W, H))
rgba.putdata([(r, g, b, 255 if i % 2 == 0 else 0) for i, (r, g, b) in enumerate(RGB)])
rgba.save(path("rgba8.png"))

# JPEGs: a smooth 8x8 RGB gradient and a grayscale one.
jw, jh = 8, 8
jrgb = Image.new("RGB", (jw, jh))
jrgb.putdata([(16 * x + 8, 16 * y + 8, 128) for y in range(jh) for x in range(jw)])
jrgb.save(path("rgb8.jpg"), quality=95)
jgray = Image.new("L", (jw, jh))
jgray.putdata([16 * x + 8 for y in range(jh) for x in range(jw)])
jgray.save(path("gray8.jpg"), quality=95)


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


# A PNG whose valid header claims 100000 x 100000 pixels (10^10 > 2^28); the IDAT is tiny.
huge = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
huge += chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
open(path("huge_header.png"), "wb").write(huge)

# A JPEG whose SOF header claims 60000 x 60000 pixels.
data = bytearray(open(path("rgb8.jpg"), "rb").read())
i = 2
while i < len(data):
    marker = data[i + 1]
    length = struct.unpack(">H", data[i + 2:i + 4])[0]
    if marker in (0xC0, 0xC1, 0xC2):
        data[i + 5:i + 9] = struct.pack(">HH", 60000, 60000)
        break
    i += 2 + length
open(path("huge_header.jpg"), "wb").write(bytes(data))

# Resize oracle: a 16x12 RGB picture and Pillow's BILINEAR resize of each channel in float mode
# (antialiased when reducing: the triangle filter is widened by the reduction factor).
import random

rng = random.Random(5)
src = Image.new("RGB", (16, 12))
src.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(16 * 12)])
src.save(path("resize_src.png"))
resized = {}
for w, h in [(5, 4), (7, 20), (40, 30), (16, 12)]:
    channels = [c.convert("F").resize((w, h), Image.BILINEAR) for c in src.split()]
    data = [list(c.get_flattened_data()) for c in channels]
    resized[f"{w}x{h}"] = [data[k][i] for i in range(w * h) for k in range(3)]

expected = {
    "resize": resized,
    "rgb8.jpg": list(sum((list(p) for p in Image.open(path("rgb8.jpg")).convert("RGB").get_flattened_data()), [])),
    "gray8.jpg": list(Image.open(path("gray8.jpg")).get_flattened_data()),
}
json.dump(expected, open(path("expected.json"), "w"))
print("wrote fixtures to", os.path.normpath(OUT))
