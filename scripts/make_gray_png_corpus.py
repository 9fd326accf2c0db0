#!/usr/bin/env python3
"""Writes the seed corpus of the FuzzGrayPNG harness (Fuzz/Corpus/FuzzGrayPNG): small PNG files
built chunk by chunk with zlib and struct, so that each chooses its row filters, IDAT split and
irregular chunks. 8-bit gray files of each filter type (the fast path), and the files it leaves
to libpng: interlaced, palette, 16-bit, 1-bit, tRNS, a 256-byte zlib window.

Usage: scripts/make_gray_png_corpus.py [FOLDER]   (default Fuzz/Corpus/FuzzGrayPNG)
"""
import os
import struct
import sys
import zlib


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filtered(rows, filters, bpp=1):
    """The rows (lists of bytes) with filter filters[y % len(filters)] before each."""
    out = bytearray()
    for y, row in enumerate(rows):
        f = filters[y % len(filters)]
        up = rows[y - 1] if y > 0 else [0] * len(row)
        out.append(f)
        for x, v in enumerate(row):
            a = row[x - bpp] if x >= bpp else 0
            b = up[x]
            c = up[x - bpp] if x >= bpp else 0
            pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][f]
            out.append((v - pred) & 0xFF)
    return bytes(out)


def png(width, height, data, depth=8, color=0, interlace=0, extra=(), parts=1, stream=None):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    stream = stream if stream is not None else zlib.compress(data, 9)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for c in extra:
        out += c
    step = -(-len(stream) // parts)
    for i in range(0, len(stream), step):
        out += chunk(b"IDAT", stream[i:i + step])
    return out + chunk(b"IEND", b"")


def gray(width, height, seed):
    rows = []
    for y in range(height):
        rows.append([((x // 3 + y // 2) * 37 + seed * (x * y % 5)) % 34 for x in range(width)])
    return rows


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(__file__), "..", "Fuzz", "Corpus", "FuzzGrayPNG")
    os.makedirs(folder, exist_ok=True)
    files = {}
    w, h = 9, 6
    rows = gray(w, h, 3)
    for f in range(5):
        files[f"gray8_filter{f}.png"] = png(w, h, filtered(rows, [f]))
    files["gray8_mixed_3idat.png"] = png(w, h, filtered(rows, [0, 1, 2, 3, 4]), parts=3)
    text = chunk(b"tEXt", b"Comment\x00labels")
    files["gray8_text_gamma.png"] = png(w, h, filtered(rows, [4, 2]),
                                        extra=[text, chunk(b"gAMA", struct.pack(">I", 45455))])
    files["gray8_trns.png"] = png(w, h, filtered(rows, [1]), extra=[chunk(b"tRNS", b"\x00\x05")])
    files["gray8_1x1.png"] = png(1, 1, b"\x00\x07")
    # Adam7: the passes of a 5x5 image, each pass's rows filtered with None.
    full = gray(5, 5, 1)
    passes = bytearray()
    for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)]:
        for y in range(y0, 5, dy):
            row = [full[y][x] for x in range(x0, 5, dx)]
            if row:
                passes += bytes([0] + row)
    files["gray8_adam7.png"] = png(5, 5, bytes(passes), interlace=1)
    palette = chunk(b"PLTE", bytes(range(3 * 34)))
    files["palette8.png"] = png(w, h, filtered(rows, [0, 2]), color=3, extra=[palette])
    rows16 = [[(v * 1000) >> 8 & 0xFF if i % 2 == 0 else (v * 1000) & 0xFF
               for v in r for i in range(2)] for r in rows]
    files["gray16.png"] = png(w, h, filtered(rows16, [1, 4], bpp=2), depth=16)
    bits = bytes(b for r in rows for b in [0, int("".join("1" if v > 16 else "0" for v in r[:8]), 2), 0x80 if r[8] > 16 else 0])
    files["gray1.png"] = png(w, h, bits, depth=1)
    # A zlib header announcing a 256-byte window over data with matches further back.
    # (rows 2 and 3 repeat rows 0 and 1, 602 bytes back; nothing nearer repeats).
    state, noise = 12345, []
    for _ in range(600):
        state = (state * 1103515245 + 12345) % 2**31
        noise.append(state >> 23)
    long_rows = [noise[:300], noise[300:], noise[:300], noise[300:]]
    raw = filtered(long_rows, [0])
    deflated = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = deflated.compress(raw) + deflated.flush()
    cmf = 0x08  # deflate, CINFO 0: 256-byte window
    flg = 31 - (cmf * 256) % 31
    stream = bytes([cmf, flg]) + body + struct.pack(">I", zlib.adler32(raw))
    files["gray8_window256.png"] = png(300, 4, raw, stream=stream)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as out:
            out.write(data)
    print(f"{len(files)} files, {sum(map(len, files.values()))} bytes in {folder}")


if __name__ == "__main__":
    main()
