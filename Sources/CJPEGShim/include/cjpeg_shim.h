#pragma once
#include <stddef.h>

/// Decodes a JPEG held in memory into packed 8-bit pixels: RGB (components 3) or
/// grayscale (components 1, when the file itself is grayscale).
/// Returns 0 on success; otherwise writes a NUL-terminated message into `error`
/// and returns nonzero. Warnings after which libjpeg would return made-up pixels
/// (a truncated file, corrupt entropy-coded data) are errors too. Images larger
/// than max_pixels are refused before any pixel buffer is allocated. Release
/// `*pixels` with cjpeg_free.
int cjpeg_decode(const unsigned char *data, size_t size, size_t max_pixels,
                 unsigned char **pixels, int *width, int *height, int *components,
                 char *error, size_t error_capacity);

/// Frees a buffer returned by cjpeg_decode.
void cjpeg_free(unsigned char *pixels);
