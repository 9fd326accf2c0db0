/// A minimal PNG encoder for 8-bit RGB images, independent of libpng.
///
/// The image data is a zlib stream of stored (uncompressed) deflate blocks (RFC 1950/1951) with
/// filter type 0 on every row, so the file is about `3 * width * height` bytes. Chunks carry a
/// CRC-32 (ISO 3309, polynomial 0xEDB88320) and the zlib stream an Adler-32.
public func encodePNG(_ image: PlotCanvas) -> [UInt8] {
  var raw: [UInt8] = []
  raw.reserveCapacity((image.width * 3 + 1) * image.height)
  for row in 0..<image.height {
    raw.append(0)  // filter type None
    let start = row * image.width * 3
    raw.append(contentsOf: image.pixels[start..<(start + image.width * 3)])
  }
  var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
  var header: [UInt8] = []
  header.appendBigEndian(UInt32(image.width))
  header.appendBigEndian(UInt32(image.height))
  header += [8, 2, 0, 0, 0]  // bit depth 8, color type RGB, deflate, adaptive filters, no interlace
  appendChunk("IHDR", header, to: &png)
  appendChunk("IDAT", zlibStored(raw), to: &png)
  appendChunk("IEND", [], to: &png)
  return png
}

/// Wraps `data` in a zlib stream of stored deflate blocks (at most 65535 bytes each).
package func zlibStored(_ data: [UInt8]) -> [UInt8] {
  var out: [UInt8] = [0x78, 0x01]  // deflate, 32 KiB window, no dictionary; 0x7801 % 31 == 0
  var offset = 0
  repeat {
    let count = min(65535, data.count - offset)
    let isFinal = offset + count == data.count
    out.append(isFinal ? 1 : 0)  // BFINAL, BTYPE = 00 (stored)
    out.append(UInt8(count & 0xFF))
    out.append(UInt8(count >> 8))
    out.append(UInt8(~count & 0xFF))
    out.append(UInt8((~count >> 8) & 0xFF))
    out.append(contentsOf: data[offset..<(offset + count)])
    offset += count
  } while offset < data.count
  out.appendBigEndian(adler32(data))
  return out
}

/// The CRC-32 used by PNG chunks (reflected, polynomial 0xEDB88320).
package func crc32(_ bytes: some Sequence<UInt8>) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
  }
  return crc ^ 0xFFFF_FFFF
}

/// The Adler-32 checksum of a zlib stream.
package func adler32(_ bytes: [UInt8]) -> UInt32 {
  var a: UInt32 = 1
  var b: UInt32 = 0
  for byte in bytes {
    a = (a + UInt32(byte)) % 65521
    b = (b + a) % 65521
  }
  return (b << 16) | a
}

private let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
  var c = UInt32(n)
  for _ in 0..<8 { c = c & 1 == 1 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
  return c
}

private func appendChunk(_ type: String, _ data: [UInt8], to png: inout [UInt8]) {
  png.appendBigEndian(UInt32(data.count))
  let typeAndData = Array(type.utf8) + data
  png += typeAndData
  png.appendBigEndian(crc32(typeAndData))
}

extension Array where Element == UInt8 {
  mutating func appendBigEndian(_ value: UInt32) {
    append(contentsOf: [24, 16, 8, 0].map { UInt8((value >> UInt32($0)) & 0xFF) })
  }
}
